-- The few parts of a Supabase database that supabase/schema.sql relies on, for a plain
-- PostgreSQL in tests: the API roles, the role PostgREST logs in as, auth.users and
-- auth.uid() (which reads the verified token's claims that PostgREST sets per request).
-- Roles are per cluster: another test run may be creating them at the same moment.
do $$ begin create role anon nologin noinherit; exception when duplicate_object then null; end $$;
do $$ begin create role authenticated nologin noinherit; exception when duplicate_object then null; end $$;
do $$ begin create role service_role nologin noinherit bypassrls; exception when duplicate_object then null; end $$;
do $$ begin create role authenticator login noinherit; exception when duplicate_object then null; end $$;
grant anon, authenticated, service_role to authenticator;

create schema if not exists auth;
grant usage on schema auth to anon, authenticated, service_role;
grant usage on schema public to anon, authenticated, service_role;

create table if not exists auth.users (
    id uuid primary key,
    email text
);

create or replace function auth.uid() returns uuid
    language sql stable
as $$
    select nullif(
        coalesce(current_setting('request.jwt.claim.sub', true),
                 (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')),
        '')::uuid
$$;

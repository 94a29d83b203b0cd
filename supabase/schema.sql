-- The tables this project reads from (and writes results back to) in Supabase.
--
-- Apply once per project, e.g. `psql "$SUPABASE_DB_URL" -f supabase/schema.sql` or paste it
-- into the dashboard's SQL editor (docs/supabase.md). Idempotent: running it again changes
-- nothing that is already there.
--
-- Who may do what (row level security):
--   * a candidate (role `authenticated`, auth.uid() = their user id) reads their own
--     sessions, the interviews those sessions are of, and those interviews' questions;
--     nothing else, and writes nothing;
--   * `anon` reads nothing;
--   * the interview server writes status and results with the service-role key, which
--     bypasses RLS; candidates never see interview_results.

create table if not exists public.interviews (
    id uuid primary key default gen_random_uuid(),
    title text not null check (length(title) between 1 and 200),
    role text not null default '' check (length(role) <= 200),
    description text not null default '',
    -- With skills and no questions, the interviewer drafts the questions when a session starts.
    skills text not null default '',
    created_at timestamptz not null default now()
);

create table if not exists public.questions (
    id uuid primary key default gen_random_uuid(),
    interview_id uuid not null references public.interviews (id) on delete cascade,
    position integer not null default 0,
    stage text not null default '' check (length(stage) <= 100),
    text text not null check (length(text) between 1 and 4000),
    created_at timestamptz not null default now()
);
create index if not exists questions_interview_position on public.questions (interview_id, position);

create table if not exists public.interview_sessions (
    id uuid primary key default gen_random_uuid(),
    interview_id uuid not null references public.interviews (id) on delete restrict,
    candidate_id uuid not null references auth.users (id) on delete cascade,
    -- Written back by the interview server as the session goes.
    status text not null default 'scheduled'
        check (status in ('scheduled', 'live', 'paused', 'disconnected', 'completed')),
    current_question integer not null default 0,
    question_count integer,
    started_at timestamptz,
    ended_at timestamptz,
    end_reason text not null default '',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index if not exists interview_sessions_candidate on public.interview_sessions (candidate_id);

-- The evaluation written when a session ends and the language model's analysis that
-- follows in the background. Recruiters' pages read it with their own (service) access.
create table if not exists public.interview_results (
    session_id uuid primary key references public.interview_sessions (id) on delete cascade,
    summary text not null default '',
    answered_questions integer not null default 0,
    details jsonb not null default '{}'::jsonb,
    analysis_status text not null default 'not_requested'
        check (analysis_status in ('not_requested', 'pending', 'done', 'failed')),
    analysis jsonb not null default '{}'::jsonb,
    analysis_error text not null default '',
    analysed_at timestamptz,
    updated_at timestamptz not null default now()
);

alter table public.interviews enable row level security;
alter table public.questions enable row level security;
alter table public.interview_sessions enable row level security;
alter table public.interview_results enable row level security;

-- Supabase grants table privileges to anon and authenticated by default; say exactly
-- what each needs instead, and let RLS pick the rows.
revoke all on public.interviews, public.questions, public.interview_sessions, public.interview_results
    from anon, authenticated;
grant select on public.interviews, public.questions, public.interview_sessions to authenticated;
grant all on public.interviews, public.questions, public.interview_sessions, public.interview_results
    to service_role;

drop policy if exists "candidates read their own sessions" on public.interview_sessions;
create policy "candidates read their own sessions" on public.interview_sessions
    for select to authenticated
    using (candidate_id = (select auth.uid()));

drop policy if exists "candidates read interviews they have a session of" on public.interviews;
create policy "candidates read interviews they have a session of" on public.interviews
    for select to authenticated
    using (exists (select 1 from public.interview_sessions s
                   where s.interview_id = interviews.id and s.candidate_id = (select auth.uid())));

drop policy if exists "candidates read questions of their interviews" on public.questions;
create policy "candidates read questions of their interviews" on public.questions
    for select to authenticated
    using (exists (select 1 from public.interview_sessions s
                   where s.interview_id = questions.interview_id and s.candidate_id = (select auth.uid())));

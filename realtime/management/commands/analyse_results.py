"""Retry the language model's analysis of sessions left pending (a worker stopped) or failed."""

import asyncio

from django.core.management.base import BaseCommand, CommandError

from interviews import selectors

from realtime.analysis import analyse
from realtime.providers.registry import get_providers


class Command(BaseCommand):
    help = "Analyse finished sessions whose analysis is pending or failed, with the configured language model."

    def handle(self, *args, **options):
        evaluator = get_providers().evaluator
        if evaluator is None:
            raise CommandError("No language model is configured (REALTIME_LLM or REALTIME_PROVIDERS).")
        session_ids = selectors.results_awaiting_analysis()

        async def run_all():
            return [await analyse(session_id=session_id, evaluator=evaluator) for session_id in session_ids]

        done = asyncio.run(run_all())
        self.stdout.write(f"{sum(done)} of {len(session_ids)} session(s) analysed.")

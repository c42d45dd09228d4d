"""Running the Streamlit app under AppTest against a test module's database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from streamlit.testing.v1 import AppTest

from tests.rls_world import PASSWORD
from trainu_dagster.db.server import Database
from trainu_dagster.settings import PROJECT_ROOT, get_settings

APP = str(PROJECT_ROOT / "streamlit_app" / "app.py")


@contextmanager
def app_pointed_at(database: Database) -> Iterator[None]:
    """The app's settings name this database until the block ends."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRAINU_DATABASE_URL", database.url())
        get_settings.cache_clear()
        yield
    get_settings.cache_clear()


def signed_in(
    email: str, password: str = PASSWORD, *, page: str | None = None, timeout: float = 30
) -> AppTest:
    """The app after signing in through its form, on `page` if one is given."""
    app = AppTest.from_file(APP, default_timeout=timeout)
    app.run()
    app.text_input[0].input(email)
    app.text_input[1].input(password)
    app.button[0].click()
    app.run()
    if page:
        app.switch_page(page)
        app.run()
    return app

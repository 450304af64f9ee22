"""The options: Options declares every mistral_* option and parses each into the shared Settings; RulesLoader
keeps the rules in force (built in, or the mistral_openapi file, reloaded when it changes)."""

from __future__ import annotations

import asyncio
import os

from mitmproxy import ctx, exceptions

from mistral_compat import settings
from mistral_compat.rules import builtin, stop_parsing
from mistral_compat.rules import load as load_rules

from . import logger
from .report import API_KEY_ENV, Redaction


class Options:
    """Declares every mistral_* option (mistral_compat/settings.py) and parses each into the shared Settings."""

    def __init__(self, conf: settings.Settings) -> None:
        self.settings = conf
        self.started = False  # the first configure (start-up) is over

    def load(self, loader) -> None:
        for o in settings.OPTIONS:
            loader.add_option(name=o.name, typespec=o.typespec, default=o.default, help=o.help, choices=o.choices)

    def configure(self, updated) -> None:
        for name in sorted(updated & settings.NAMES):
            try:
                self.settings.set(name, getattr(ctx.options, name))
            except ValueError as e:
                self.refuse(f"{name}: {e}")
        if "mistral_redirect_openai" in updated:
            self.api_key()
        self.started = True

    def api_key(self) -> None:
        """With mistral_redirect_openai, the Mistral key from the environment (never from an option: options are
        printed by mitmproxy's `options` command and saved by mitmweb)."""
        conf = self.settings
        conf.api_key = None
        Redaction.secrets = ()
        if not conf.redirect_openai:
            return
        key = os.environ.get(API_KEY_ENV, "").strip()
        if not key:
            self.refuse(
                f"mistral_redirect_openai needs your Mistral API key in the environment variable {API_KEY_ENV} "
                f"(the proxy sends it to {conf.redirect_to} instead of the app's own key): set it, "
                f"e.g. export {API_KEY_ENV}=..., and start again"
            )
        elif not key.isascii() or not key.isprintable() or " " in key:
            self.refuse(
                f"the environment variable {API_KEY_ENV} does not hold an API key (it has spaces or "
                f"characters an HTTP header cannot carry)"
            )
        else:
            conf.api_key = key
            Redaction.secrets = (key,)

    def refuse(self, message: str) -> None:
        """A bad option value. mitmproxy prints whatever a script's configure raises while it loads the script
        (start-up) with a traceback; so at the first configure the message is logged as an error instead, and
        mitmdump/mitmweb stop with "Error logged during startup" (exit code 1). Later (an option changed at run
        time) OptionsError is raised: mitmproxy refuses the change and keeps the value before it."""
        if self.started:
            raise exceptions.OptionsError(message)
        logger.error(f"OptionsError: {message}")

    def running(self) -> None:
        for name in sorted(k for k in getattr(ctx.options, "deferred", {}) if k.startswith("mistral_")):
            logger.warning(
                f"Unknown option {name!r} ignored: mistral-compat has no such option "
                f"(its options are listed in the README)."
            )


class RulesLoader:
    """The rules in force (Settings.rules): built in, or from the mistral_openapi file, reloaded when it changes."""

    WATCH_INTERVAL = 1.0  # seconds between checks of mistral_openapi for changes

    def __init__(self, conf: settings.Settings) -> None:
        self.settings = conf
        self.spec_path = ""
        self.spec_stamp: tuple | None = None
        self.watcher: asyncio.Task | None = None

    def configure(self, updated) -> None:
        if "mistral_openapi" not in updated:
            return
        self.spec_path = ctx.options.mistral_openapi
        if not self.spec_path:
            self.spec_stamp = None
            self.settings.rules = builtin()
        elif self.watcher is None:  # start-up: load it now, so that the first request has these rules
            self.spec_stamp = _stamp(self.spec_path)
            self.settings.rules = self.load_spec(self.spec_path)
        else:  # changed while running: the watcher loads it within a second, off the event loop
            self.spec_stamp = ("changed",)

    def running(self) -> None:
        if self.watcher is None:
            self.watcher = asyncio.get_running_loop().create_task(self.watch())

    def done(self) -> None:
        if self.watcher is not None:
            self.watcher.cancel()
            self.watcher = None
        stop_parsing()  # a spec file still being parsed would hold up the exit

    def load_spec(self, path: str, keep=None):
        loaded = load_rules(path, keep)
        for level, message in loaded.messages:
            logger.log(level, message)
        return loaded.rules

    async def watch(self) -> None:
        """Reload the rules when the mistral_openapi file changes. It is parsed in a separate process that a
        thread waits for, so requests keep flowing; no failure ends the watch (the next good file loads)."""
        while True:
            await asyncio.sleep(self.WATCH_INTERVAL)
            path = self.spec_path
            if not path:
                continue
            try:
                stamp = _stamp(path)
                if stamp != self.spec_stamp:
                    self.spec_stamp = stamp
                    rules = await asyncio.to_thread(load_rules, path, self.settings.rules)
                    for level, message in rules.messages:
                        logger.log(level, message)
                    if path == self.spec_path:
                        self.settings.rules = rules.rules
            except Exception as e:  # load_rules reports its failures itself; this is the last resort
                logger.warning(
                    f"mistral-compat: mistral_openapi: reloading {path} failed "
                    f"({type(e).__name__}: {e}); the rules in force stay"
                )


def _stamp(path: str) -> tuple | None:
    """What tells a changed file: a file replaced by another (a new inode) with the same size and time too."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns

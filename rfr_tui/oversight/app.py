"""``OversightApp``: the oversight workspace's application, for its auditors, on the terminal application's base.

It is given an open ``Oversight`` (tests) or the oversight's configuration, which it opens itself
as ``rfr oversight`` does: with the key file, or, when the workspace opens with a passphrase, after
an engineer types it on the unlock screen. Everyone then signs in with their own name and
password; the session locks after the policy's idle time and ``ctrl+q`` signs out
(``LockedDownApp``). It holds no business rule: every decision, every refusal, is the engine's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from textual.screen import Screen

from engine.errors import RfrError
from engine.oversight.service import Oversight, OversightConfig
from engine.security.keys import WorkspaceKey
from engine.security.users import Accounts
from rfr_tui.desk import Desk
from rfr_tui.widgets.file_chooser import Place, default_places


def _open(config: OversightConfig, key: WorkspaceKey | None) -> Oversight:
    return Oversight.open(config, key=key)


class OversightApp(Desk):
    """The oversight's application: import bundles, findings, terminals, the quarterly report."""

    TITLE = "rfr oversight: audit bundles and the Board's figures"
    WORKSPACE_NOUN = "oversight workspace"
    ENABLE_COMMAND_PALETTE: ClassVar[bool] = True

    def __init__(
        self,
        *,
        oversight: Oversight | None = None,
        config: OversightConfig | None = None,
        open_oversight: Callable[[OversightConfig, WorkspaceKey | None], Oversight] | None = None,
        private_key_file: Path | None = None,
        places: Sequence[Place] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if oversight is None and config is None:
            raise ValueError("give the application an oversight workspace or its configuration")
        self._oversight = oversight
        self._owns_oversight = oversight is None  # given one (tests): the giver closes it
        self.config = config
        self._open_oversight = open_oversight or _open
        self.private_key_file = private_key_file
        """The oversight private key file bundles are opened with (None: chosen on the Import screen)."""
        self._places = list(places) if places is not None else None

    # ---- the oversight workspace -------------------------------------------------------------------

    @property
    def oversight(self) -> Oversight:
        if self._oversight is None:
            raise RuntimeError("the oversight workspace is not open yet")
        return self._oversight

    @property
    def oversight_or_none(self) -> Oversight | None:
        return self._oversight

    @property
    def workspace_name(self) -> str:
        """The workspace's folder name, for the status bar (the whole path is on the command line that opened it)."""
        if self.config is not None:
            return self.config.workspace.name
        return Path(self.oversight.ws.directory).name

    @property
    def accounts_or_none(self) -> Accounts | None:
        return None if self._oversight is None else self._oversight.accounts

    def workspace_path(self) -> Path:
        assert self.config is not None, "only an application given a configuration unlocks the workspace"
        return self.config.workspace

    def workspace_label(self) -> str:
        return f"Oversight workspace: {self.workspace_name}"

    def sign_in_screen(self) -> Screen[Any]:
        from rfr_tui.screens.oversight_sign_in import OversightSignInScreen

        return OversightSignInScreen()

    def places(self) -> list[Place]:
        """Where files are chosen from and written to: removable media and the home folder (tests give their own)."""
        return list(self._places) if self._places is not None else default_places()

    def on_mount(self) -> None:
        super().on_mount()
        from rfr_tui.screens.oversight_sign_in import OversightUnlockScreen

        if self._oversight is not None:
            self.push_screen(self.sign_in_screen())
        elif self.config is not None and self.config.key_file is None:
            self.push_screen(OversightUnlockScreen())
        else:
            self.push_screen(self.sign_in_screen())
            self.open_workspace(None)

    def open_workspace(
        self,
        key: WorkspaceKey | None,
        done: Callable[[], None] | None = None,
        failed: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Open the configured oversight workspace in a worker (its key file, or the key the unlock screen derived)."""
        config = self.config
        assert config is not None, "only an application given a configuration opens the workspace itself"

        def opened(oversight: Oversight) -> None:
            self._oversight = oversight
            if done is not None:
                done()

        self.run_engine(self, lambda: self._open_oversight(config, key), opened, group="open-oversight", failed=failed)

    # ---- people -------------------------------------------------------------------------------

    def home_screen(self) -> Screen[Any]:
        from rfr_tui.screens.oversight_home import OversightHomeScreen

        return OversightHomeScreen()

    def idle_timeout(self) -> float:
        return self.oversight.policy.sessions.idle_timeout_minutes

    # ---- closing -------------------------------------------------------------------------------

    async def on_unmount(self) -> None:
        if self._oversight is not None and self._owns_oversight:
            if self.session is not None:
                try:
                    self._oversight.accounts.logout(self.session)
                except RfrError:
                    pass
            self._oversight.close()

"""Before the work at the oversight: the terminal's own gate screens (``rfr_tui.screens.sign_in``), worded for the
oversight workspace. What they do with the engine is the desk's (``OversightApp``'s accounts and workspace); only
the words differ here.
"""

from __future__ import annotations

from rfr_tui.screens.sign_in import SignInScreen, UnlockScreen


class OversightUnlockScreen(UnlockScreen):
    """At start-up, when the oversight workspace opens with a passphrase: an engineer types it once."""

    TITLE_TEXT = "Unlock the oversight workspace"
    INTRO = (
        "This oversight workspace opens with its passphrase. An engineer types it once, at start-up; "
        "after that everyone signs in with their own name and password."
    )


class OversightSignInScreen(SignInScreen):
    """Everyone's way in: their own name and password, checked by the oversight workspace's accounts."""

    INTRO = "Oversight of retrospective facial recognition. Sign in with your own name and password."

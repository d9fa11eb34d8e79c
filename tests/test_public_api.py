from __future__ import annotations

import gristmill


def test_all_lists_every_public_name() -> None:
    public = {
        name
        for name, obj in vars(gristmill).items()
        if not name.startswith("_") and getattr(obj, "__module__", "").startswith("gristmill.")
    }
    assert set(gristmill.__all__) == public

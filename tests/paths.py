"""Where the tests find the repository and the shared validation data, wherever a test file sits."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
VALIDATION_ROOT = REPO_ROOT.parent / "shared" / "validation"

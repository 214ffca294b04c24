"""The ASVS coverage table (eoms.core.asvs, `eoms security table`): markers on functions, classes and
modules are found, the table is written between its markers and --check fails when it is stale."""

import io
import textwrap

import pytest
from django.core.management import CommandError, call_command

from eoms.core.asvs import END, START, collect

MODULE = """
import pytest

pytestmark = [pytest.mark.django_db, pytest.mark.asvs("16.3.1")]


@pytest.mark.asvs("2.4.1", "V6.3.1")
def test_limited():
    pass


def test_untagged():
    pass


@pytest.mark.asvs("11.3.3")
class TestSealed:
    @pytest.mark.asvs("11.3.2")
    def test_gcm(self):
        pass

    def test_flipped_bit(self):
        pass


def helper_not_a_test():
    pass
"""


def _tree(tmp_path, text=MODULE):
    (tmp_path / "app" / "tests").mkdir(parents=True)
    (tmp_path / "app" / "tests" / "test_things.py").write_text(textwrap.dedent(text))
    (tmp_path / ".venv" / "lib").mkdir(parents=True)  # never read
    (tmp_path / ".venv" / "lib" / "test_vendor.py").write_text('@pytest.mark.asvs("1.1.1")\ndef test_x(): pass\n')
    return tmp_path


def _table(tmp_path, *args) -> str:
    out = io.StringIO()
    call_command("security", "table", "--root", str(tmp_path), *args, stdout=out)
    return out.getvalue()


def test_markers_of_functions_classes_and_modules_are_collected(tmp_path):
    f = "app/tests/test_things.py::"
    assert collect(_tree(tmp_path)) == {
        "2.4.1": [f"{f}test_limited"],
        "6.3.1": [f"{f}test_limited"],
        "11.3.2": [f"{f}TestSealed::test_gcm"],
        "11.3.3": [f"{f}TestSealed::test_flipped_bit", f"{f}TestSealed::test_gcm"],
        "16.3.1": [
            f"{f}TestSealed::test_flipped_bit",
            f"{f}TestSealed::test_gcm",
            f"{f}test_limited",
            f"{f}test_untagged",
        ],
    }


def test_the_table_is_written_between_its_markers_and_checked(tmp_path):
    root = _tree(tmp_path)
    (root / "docs").mkdir()
    document = root / "docs" / "security.md"
    document.write_text(f"# Security\n\nWritten by hand.\n\n{START}\nold\n{END}\n\nAlso by hand.\n")
    with pytest.raises(CommandError, match="security.md is stale \\(5 ASVS requirements, 4 tests\\)"):
        _table(root, "--check")
    assert _table(root) == "docs/security.md written: 5 ASVS requirements, 4 tests\n"
    text = document.read_text()
    assert text.startswith("# Security\n\nWritten by hand.\n\n" + START + "\n\n5 requirements covered by 4 tests.\n")
    assert text.endswith(END + "\n\nAlso by hand.\n")
    assert "| 2.4.1 | Validation and Business Logic | `app/tests/test_things.py::test_limited` |" in text
    assert _table(root, "--check") == "docs/security.md is up to date: 5 ASVS requirements, 4 tests\n"
    assert _table(root) == "docs/security.md unchanged: 5 ASVS requirements, 4 tests\n"


def test_a_marker_without_a_requirement_id_is_refused(tmp_path):
    root = _tree(tmp_path, '@pytest.mark.asvs("rate limits")\ndef test_x():\n    pass\n')
    with pytest.raises(CommandError, match="app/tests/test_things.py:1: asvs marker needs requirement ids"):
        _table(root)


def test_the_repository_table_is_current():
    """docs/security.md matches the markers (as CI's `eoms security table --check` requires)."""
    call_command("security", "table", "--check", stdout=io.StringIO())

"""circus.evaluator.inputs: a jobset's inputs as Nix arguments, as the hash that says two
evaluations saw the same thing, as the rows anyone may read (credentials masked), and the
check that a path input stays inside `evaluator.allowed_path_inputs`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from circus.evaluator.inputs import (
    EvalInput,
    JobsetInput,
    allowed_paths,
    check_paths,
    inputs_hash,
    nix_args,
    recorded,
)
from circus.services.sources import Policy, SourceRefused


def test_a_git_value_is_url_then_optional_branch() -> None:
    both = JobsetInput("src", "git", "https://example.org/repo.git  release-1 ")
    assert (both.git_url, both.git_branch) == ("https://example.org/repo.git", "release-1")
    alone = JobsetInput("src", "git", "https://example.org/repo.git")
    assert (alone.git_url, alone.git_branch) == ("https://example.org/repo.git", None)
    assert (JobsetInput("src", "git", "  ").git_url, JobsetInput("src", "git", "").git_branch) \
        == ("", None)


def test_strings_and_nix_values_become_argstr_and_arg() -> None:
    args = nix_args([JobsetInput("greeting", "string", 'say "hi" ${x}'),
                     JobsetInput("systems", "nix", '[ "x86_64-linux" ]')])
    # --argstr passes the string as it is; a nix value is an expression, unquoted.
    assert args == ["--argstr", "greeting", 'say "hi" ${x}',
                    "--arg", "systems", '[ "x86_64-linux" ]']


@pytest.mark.parametrize(("value", "nix"), [
    ("true", "true"), ("1", "true"), (" Yes ", "true"), ("ON", "true"),
    ("false", "false"), ("0", "false"), ("", "false"), ("maybe", "false"),
])
def test_a_boolean_is_nixs_true_or_false(value: str, nix: str) -> None:
    assert nix_args([JobsetInput("flag", "boolean", value)]) == ["--arg", "flag", nix]


def test_a_path_is_a_nix_path_expression_with_its_string_escaped() -> None:
    # `/. + "..."`: a path Nix reads, and a value that cannot break out of the string.
    [*_, expr] = nix_args([JobsetInput("p", "path", '/srv/a "b" ${c}\\d')])
    assert expr == '/. + "/srv/a \\"b\\" \\${c}\\\\d"'


def test_a_git_input_is_passed_as_its_checkout() -> None:
    checked_out = JobsetInput("src", "git", "https://example.org/r.git", path="/tmp/co")
    assert nix_args([checked_out]) == ["--arg", "src", '/. + "/tmp/co"']


def test_allowed_paths_are_the_path_and_git_inputs() -> None:
    inputs = [JobsetInput("a", "path", "/srv/a"),
              JobsetInput("b", "git", "https://example.org/r.git", path="/tmp/co"),
              JobsetInput("c", "string", "/not/a/path"),
              JobsetInput("d", "nix", "./x")]
    assert allowed_paths(inputs) == ["/srv/a", "/tmp/co"]


def _inputs() -> list[JobsetInput]:
    return [JobsetInput("a", "string", "x"),
            JobsetInput("src", "git", "https://example.org/r.git", revision="abc123")]


def test_the_inputs_hash_ignores_order_and_is_sha256_hex() -> None:
    first = inputs_hash("c0ffee", "release.nix", False, _inputs())
    assert first == inputs_hash("c0ffee", "release.nix", False, reversed(_inputs()))
    assert re.fullmatch(r"[0-9a-f]{64}", first)


def test_the_inputs_hash_changes_with_anything_an_evaluation_sees() -> None:
    base = inputs_hash("c0ffee", "release.nix", False, _inputs())
    changed_input = [_inputs()[0], JobsetInput("src", "git", "https://example.org/r.git",
                                               revision="def456")]
    others = {
        inputs_hash("c0ffed", "release.nix", False, _inputs()),
        inputs_hash("c0ffee", "other.nix", False, _inputs()),
        inputs_hash("c0ffee", "release.nix", True, _inputs()),
        inputs_hash("c0ffee", "release.nix", False, changed_input),
        inputs_hash("c0ffee", "release.nix", False, _inputs()[:1]),
    }
    assert base not in others
    assert len(others) == 5


def test_the_inputs_hash_ignores_where_a_checkout_lives() -> None:
    # Two checkouts of the same revision are the same input.
    here = JobsetInput("src", "git", "u", path="/tmp/one", revision="r")
    there = JobsetInput("src", "git", "u", path="/tmp/two", revision="r")
    assert inputs_hash("c", "e", False, [here]) == inputs_hash("c", "e", False, [there])


def test_recorded_inputs_mask_credentials() -> None:
    rows = recorded([
        JobsetInput("src", "git", "https://user:token@example.org/r.git main", revision="abc"),
        JobsetInput("other", "git", "ssh://git:secret@example.org/r.git"),
        JobsetInput("url", "string", "see https://bob:pw@example.org/x and more"),
        JobsetInput("flag", "boolean", "true"),
    ])
    assert rows == [
        EvalInput("src", "git", uri="https://***@example.org/r.git", revision="abc",
                  value="main"),
        # ssh keeps the user name, which is not a secret, and masks the password.
        EvalInput("other", "git", uri="ssh://git:***@example.org/r.git"),
        EvalInput("url", "string", value="see https://***@example.org/x and more"),
        EvalInput("flag", "boolean", value="true"),
    ]


def _policy(*roots: Path) -> Policy:
    return Policy(frozenset({"https"}), path_roots=tuple(str(r) for r in roots))


def test_a_path_input_inside_an_allowed_root_passes(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    check_paths([JobsetInput("src", "path", str(tmp_path / "src")),
                 JobsetInput("top", "path", str(tmp_path)),
                 # Not path inputs: not this check's business.
                 JobsetInput("s", "string", "/etc"),
                 JobsetInput("g", "git", "https://example.org/r.git")],
                _policy(tmp_path))


def test_path_inputs_are_refused_when_no_root_is_allowed() -> None:
    with pytest.raises(SourceRefused, match=r"^inputs\.src: path inputs are disabled"):
        check_paths([JobsetInput("src", "path", "/srv/src")], _policy())


def test_a_relative_path_input_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceRefused, match=r"^inputs\.src: a path input must be an absolute "
                                            r"path, got 'src'$"):
        check_paths([JobsetInput("src", "path", "src")], _policy(tmp_path))


@pytest.mark.parametrize("where", ["outside", "allowed-sibling", "allowed/../outside"])
def test_a_path_input_outside_the_roots_is_refused(tmp_path: Path, where: str) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    value = str(tmp_path / where)
    with pytest.raises(SourceRefused, match=f"^inputs\\.p: {re.escape(repr(value))} is not "
                                            "inside evaluator.allowed_path_inputs"):
        check_paths([JobsetInput("p", "path", value)], _policy(allowed))


def test_a_symlink_out_of_an_allowed_root_is_refused(tmp_path: Path) -> None:
    # Resolved before it is compared: the link's name is inside, its target is not.
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "escape").symlink_to("/etc")
    with pytest.raises(SourceRefused, match="is not inside"):
        check_paths([JobsetInput("p", "path", str(allowed / "escape"))], _policy(allowed))

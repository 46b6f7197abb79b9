"""circus.domain.manifest: a builds.sr.ht manifest parsed as sr.ht reads it, every
refusal naming the key at fault, and the files a job's tasks run with (`~/.buildenv`
read back by bash unchanged, each task behind sr.ht's preamble)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import attrs
import pytest

from circus.domain.errors import InvalidValue
from circus.domain.manifest import (
    COMPLETE_BUILD_EXIT,
    COMPLETE_BUILD_SCRIPT,
    MAX_MANIFEST,
    Manifest,
    Source,
    Task,
    Trigger,
    buildenv,
    check_note,
    check_tags,
    parse,
    source_dir,
    task_script,
)

# The example of sr.ht's manual, with a package set's attribute names.
FULL = """\
image: nixos/unstable
arch: x86_64
packages:
  - scdoc
  - nixos.hello
repositories:
  extra: https://example.org/nixpkgs
sources:
  - https://git.sr.ht/~sircmpwn/scdoc#v1.11.2
  - git::https://git.sr.ht/~sircmpwn/hare.git
environment:
  deploy: drew@example.org
  VERSION: 1.10
  DEBUG: true
  FLAGS:
    - -O2
    - -g
secrets:
  - 8f2b3f04-8b5a-4d6b-9bd3-e1c4c3c6f1a2
tasks:
  - setup: |
      cd scdoc
      make
  - test: |
      cd scdoc
      make check
triggers:
  - action: email
    condition: failure
    to: Drew DeVault <sir@example.org>
    cc: list@example.org
  - action: webhook
    condition: always
    url: https://example.org/hook
artifacts:
  - scdoc/scdoc
  - ~/scdoc/scdoc.1
  - /tmp/log.txt
shell: true
oauth: git.sr.ht/REPOSITORIES:RO
"""

MINIMAL = "image: nixos/unstable\ntasks:\n  - build: make\n"


def test_the_manual_example_parses_to_its_values() -> None:
    assert parse(FULL) == Manifest(
        image="nixos/unstable",
        arch="x86_64",
        packages=("scdoc", "nixos.hello"),
        repositories={"extra": "https://example.org/nixpkgs"},
        sources=(Source("https://git.sr.ht/~sircmpwn/scdoc", ref="v1.11.2"),
                 Source("https://git.sr.ht/~sircmpwn/hare.git", scheme="git")),
        # Numbers and booleans are kept as written: 1.10 is not the number 1.1.
        environment={"deploy": "drew@example.org", "VERSION": "1.10", "DEBUG": "true",
                     "FLAGS": ("-O2", "-g")},
        secrets=("8f2b3f04-8b5a-4d6b-9bd3-e1c4c3c6f1a2",),
        tasks=(Task("setup", "cd scdoc\nmake\n"), Task("test", "cd scdoc\nmake check\n")),
        triggers=(Trigger("email", "failure", to="Drew DeVault <sir@example.org>",
                          cc="list@example.org"),
                  Trigger("webhook", "always", url="https://example.org/hook")),
        artifacts=("scdoc/scdoc", "~/scdoc/scdoc.1", "/tmp/log.txt"),
        shell=True,
        oauth="git.sr.ht/REPOSITORIES:RO",
    )


def test_optional_keys_default_to_nothing() -> None:
    manifest = parse(MINIMAL + "packages:\nenvironment:\n")
    assert (manifest.arch, manifest.packages, manifest.repositories, manifest.sources,
            manifest.environment, manifest.secrets, manifest.triggers, manifest.artifacts,
            manifest.shell, manifest.oauth) == (None, (), {}, (), {}, (), (), (), False, None)


@pytest.mark.parametrize(("text", "field", "problem"), [
    ("- image: x\n", "manifest", "must be a mapping of keys such as image and tasks"),
    ("", "manifest", "is empty"),
    ("image: [x\n", "manifest", "is not valid YAML: expected ',' or ']', but got "
     "'<stream end>' (line 2, column 1)"),
    ("a: &x [1]\nb: *x\n", "manifest", "YAML aliases are not allowed (line 2, column 4)"),
    ("<<: {image: x}\n", "manifest", "YAML merge keys (<<) are not allowed "
     "(line 1, column 1)"),
    (MINIMAL + "image: y\n", "manifest", 'the key "image" comes twice (line 4, column 1)'),
    ("x: " + "[" * 8000 + "]" * 8000, "manifest", "is nested too deeply"),
    ("x: !!python/object:os.system {}\n", "manifest", "is not valid YAML: could not "
     "determine a constructor for the tag 'tag:yaml.org,2002:python/object:os.system' "
     "(line 1, column 4)"),
    ("imgae: x\n", "imgae", "is not a manifest key; the keys are image, arch, packages, "
     "repositories, sources, environment, secrets, tasks, triggers, artifacts, shell, "
     "oauth"),
    ("tasks: [build: x]\n", "image", "is required, such as nixos/unstable"),
    ("image: [x]\ntasks: [build: x]\n", "image", "must be a string, not a list"),
    ("image: a b\ntasks: [build: x]\n", "image", '"a b" is not an image name such as '
     "nixos/unstable"),
    (MINIMAL + "arch: x86 64\n", "arch", '"x86 64" is not an architecture such as x86_64'),
    (MINIMAL + "packages: hello\n", "packages", "must be a list of strings, not a string"),
    (MINIMAL + "packages: [hello, 3]\n", "packages[1]", "must be a string, not a number"),
    (MINIMAL + "packages: [.hello]\n", "packages[0]", '".hello" is not a package '
     'attribute: letters, digits, "-", "_", "+" and ".", no part empty or starting '
     'with "-"'),
    (MINIMAL + "packages: [-rf]\n", "packages[0]", '"-rf" is not a package attribute: '
     'letters, digits, "-", "_", "+" and ".", no part empty or starting with "-"'),
    (MINIMAL + "repositories: [x]\n", "repositories", "must be a mapping of names to URLs"),
    (MINIMAL + "repositories: {a b: x}\n", "repositories", 'the name "a b" may hold only '
     'letters, digits, "-", "_" and "."'),
    (MINIMAL + "repositories: {a: [x]}\n", "repositories.a", "must be a string, not a list"),
    (MINIMAL + "sources: [hg::https://x/y]\n", "sources[0]", '"hg" sources are not '
     "supported, only git (git::URL)"),
    (MINIMAL + "sources: [--upload-pack=x]\n", "sources[0]", '"--upload-pack=x" is not a '
     "repository URL"),
    (MINIMAL + "sources: ['https://x/y#']\n", "sources[0]", '"" is not a git ref (a branch, '
     "tag or commit)"),
    (MINIMAL + "sources: ['https://x/y#-b']\n", "sources[0]", '"-b" is not a git ref (a '
     "branch, tag or commit)"),
    (MINIMAL + "sources: [https://x/..]\n", "sources[0]", 'would clone into "..", which is '
     "not a directory name"),
    (MINIMAL + "sources: [https://x/.git]\n", "sources[0]", 'would clone into "", which is '
     "not a directory name"),
    (MINIMAL + "sources: [https://a/y, 'git::https://b/y.git#v1']\n", "sources[1]",
     'clones into "y" like sources[0]'),
    (MINIMAL + "environment: [x]\n", "environment", "must be a mapping of variable names "
     "to values"),
    (MINIMAL + "environment: {1X: a}\n", "environment", 'the name "1X" is not a shell '
     'variable name (letters, digits and "_", not starting with a digit)'),
    (MINIMAL + "environment: {FOO: {a: b}}\n", "environment.FOO", "must be a string, a "
     "number, a boolean or a list of strings"),
    (MINIMAL + "environment: {FOO: }\n", "environment.FOO", "must be a string, a number, a "
     "boolean or a list of strings"),
    (MINIMAL + "environment: {FOO: [a, [b]]}\n", "environment.FOO", "a list may hold only "
     "strings, numbers or booleans"),
    (MINIMAL + 'environment: {FOO: "a\\0b"}\n', "environment.FOO", "may not hold a NUL "
     "character"),
    (MINIMAL + "secrets: [not-a-uuid]\n", "secrets[0]", '"not-a-uuid" is not a secret\'s '
     "UUID"),
    ("image: x\n", "tasks", "is required: a list of tasks to run"),
    ("image: x\ntasks: []\n", "tasks", "must hold at least one task"),
    ("image: x\ntasks: {build: make}\n", "tasks", "must be a list; each task is a mapping "
     "of one name to a script"),
    ("image: x\ntasks: [make]\n", "tasks[0]", "each task is a mapping of one name to a "
     "script"),
    ("image: x\ntasks: [{a: x, b: y}]\n", "tasks[0]", "each task is a mapping of one name "
     "to a script"),
    ("image: x\ntasks: [a: x, a b: y]\n", "tasks[1]", 'the name "a b" may hold only '
     'letters, digits, "-" and "_"'),
    ("image: x\ntasks: [build: x, build: y]\n", "tasks", 'the name "build" comes twice'),
    ("image: x\ntasks: [build: [make]]\n", "tasks[0]", 'the script of "build" must be a '
     "string, not a list"),
    ("image: x\ntasks: [" + "a" * 129 + ": x]\n", "tasks[0]", "the name is longer than 128 "
     "characters"),
    (MINIMAL + "triggers: {action: email}\n", "triggers", "must be a list of triggers"),
    (MINIMAL + "triggers: [email]\n", "triggers[0]", "must be a mapping with an action and "
     "a condition"),
    (MINIMAL + "triggers: [{action: irc, condition: always}]\n", "triggers[0].action",
     'must be "webhook" or "email"'),
    (MINIMAL + "triggers: [{action: email, condition: sometimes, to: a@b}]\n",
     "triggers[0].condition", 'must be "always", "failure" or "success"'),
    (MINIMAL + "triggers: [{action: webhook, condition: always}]\n", "triggers[0].url",
     "is required"),
    (MINIMAL + "triggers: [{action: webhook, condition: always, url: 'file:///x'}]\n",
     "triggers[0].url", '"file:///x" is not an http:// or https:// URL'),
    (MINIMAL + "triggers: [{action: email, condition: always}]\n", "triggers[0].to",
     "is required"),
    (MINIMAL + "triggers: [{action: email, condition: always, to: a@b, url: x}]\n",
     "triggers[0].url", "is not a key of email triggers; they take action, condition, to, "
     "cc, in_reply_to"),
    (MINIMAL + 'triggers: [{action: email, condition: always, to: "a@b\\nBcc: c@d"}]\n',
     "triggers[0].to", "must be one line of text"),
    (MINIMAL + "triggers: [{action: email, condition: always, to: nobody}]\n",
     "triggers[0].to", '"nobody" is not an email address'),
    (MINIMAL + "artifacts: [a, b, c, d, e, f, g, h, i]\n", "artifacts", "at most 8 are kept"),
    (MINIMAL + "artifacts: [out/]\n", "artifacts[0]", '"out/" does not name a file'),
    (MINIMAL + 'artifacts: ["a\\0b"]\n', "artifacts[0]", "may not hold a NUL character"),
    (MINIMAL + "artifacts: [~root/x]\n", "artifacts[0]", '"~root/x" may start with "~/" but '
     'not "~name"'),
    (MINIMAL + "artifacts: [a/log, b/log]\n", "artifacts[1]", "has the file name of "
     "artifacts[0]"),
    (MINIMAL + "shell: yes please\n", "shell", "must be true or false, not a string"),
    (MINIMAL + "oauth: [x]\n", "oauth", "must be a string, not a list"),
])
def test_each_problem_names_its_key(text: str, field: str, problem: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        parse(text)
    assert (caught.value.field, caught.value.problem) == (field, problem)


def _sized(size: int) -> str:
    """MINIMAL padded to `size` UTF-8 bytes with a comment of two-byte characters."""
    room = size - len(MINIMAL.encode()) - len("#\n")
    return MINIMAL + "#" + "\u00e9" * (room // 2) + "x" * (room % 2) + "\n"


def test_the_size_limit_counts_bytes() -> None:
    assert len(_sized(MAX_MANIFEST).encode()) == MAX_MANIFEST == 16384
    assert len(_sized(MAX_MANIFEST)) < MAX_MANIFEST
    assert parse(_sized(MAX_MANIFEST)).image == "nixos/unstable"
    with pytest.raises(InvalidValue) as caught:
        parse(_sized(MAX_MANIFEST + 1))
    assert str(caught.value) == "manifest: is 16385 bytes, more than the 16384 allowed"


@pytest.mark.parametrize(("url", "directory"), [
    ("https://git.sr.ht/~sircmpwn/scdoc", "scdoc"),
    ("https://x/y/z.git", "z"),
    ("https://x/y/z/", "z"),
    ("git@git.sr.ht:~sircmpwn/scdoc", "scdoc"),
    ("git@example.org:repo.git", "repo"),
    ("https://example.org:8080", "example.org:8080"),
])
def test_a_source_is_cloned_into_its_last_path_component(url: str, directory: str) -> None:
    assert source_dir(Source(url)) == directory


def test_a_ref_and_the_git_prefix_do_not_change_the_directory() -> None:
    [source] = parse(MINIMAL + "sources: ['git::https://x/y/z.git#v1']\n").sources
    assert source == Source("https://x/y/z.git", ref="v1", scheme="git")
    assert source_dir(source) == "z"


VALUES = {
    "PLAIN": "hello",
    "EMPTY": "",
    "SUBST": "$(touch pwned) `touch pwned` ${HOME}",
    "QUOTES": "it's \"quoted\" \\ and 'single'",
    "LINES": "one\ntwo\n\nthree\n",
}


def test_buildenv_values_survive_bash(tmp_path: Path) -> None:
    environment: dict[str, str | tuple[str, ...]] = dict(VALUES)
    environment["ARRAY"] = ("a b", "$(x)", "it's", "", "new\nline")
    manifest = parse(MINIMAL)
    env_file = tmp_path / "buildenv"
    env_file.write_text(buildenv(_with_environment(manifest, environment)))
    for name, value in VALUES.items():
        assert _bash(tmp_path, f'. {env_file}; printf %s "${name}"') == value
        # Exported: a child process sees it too.
        assert _bash(tmp_path, f". {env_file}; bash -c 'printf %s \"${name}\"'") == value
    printed = _bash(tmp_path, f'. {env_file}; printf "%s\\0" "${{ARRAY[@]}}"')
    assert printed.split("\0")[:-1] == list(environment["ARRAY"])
    assert not (tmp_path / "pwned").exists()


def test_buildenv_is_exports_then_arrays_in_manifest_order() -> None:
    manifest = parse(MINIMAL + "environment:\n  B: 'x y'\n  A: [p, q r]\n  C: 3\n")
    assert buildenv(manifest) == ("export B='x y'\n"
                                  "A=( p 'q r' )\nexport A\n"
                                  "export C=3\n")
    assert buildenv(parse(MINIMAL)) == ""


def _with_environment(manifest: Manifest,
                      environment: dict[str, str | tuple[str, ...]]) -> Manifest:
    return attrs.evolve(manifest, environment=environment)


def _bash(cwd: Path, script: str) -> str:
    done = subprocess.run(["bash", "-c", script], cwd=cwd, capture_output=True, text=True,
                          check=True, timeout=30)
    return done.stdout


def test_a_task_script_starts_with_srhts_preamble() -> None:
    [task] = parse(MINIMAL).tasks
    assert task_script(task) == ("#!/usr/bin/env bash\n. ~/.buildenv\nset -x\nset -e\n"
                                 "make\n")
    assert task_script(Task("t", "a\nb\n")).endswith("set -e\na\nb\n")


def test_a_task_script_stops_at_the_first_failure(tmp_path: Path) -> None:
    (tmp_path / ".buildenv").write_text("export GREETING='hi there'\n")
    script = task_script(Task("t", 'echo "$GREETING"\nfalse\necho unreachable'))
    done = subprocess.run(["bash"], input=script, capture_output=True, text=True,
                          env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}, timeout=30)
    assert (done.returncode, done.stdout) == (1, "hi there\n")


def test_complete_build_exits_with_the_status_that_ends_a_job_early(tmp_path: Path) -> None:
    command = tmp_path / "complete-build"
    command.write_text(COMPLETE_BUILD_SCRIPT)
    command.chmod(0o755)
    assert subprocess.run([str(command)], timeout=30).returncode == COMPLETE_BUILD_EXIT == 255


def test_tags_are_short_lowercase_words() -> None:
    assert check_tags(["main", "v1.2_rc-3"]) == ("main", "v1.2_rc-3")
    assert check_tags(None) == ()
    assert check_tags(["a" * 128] * 16) == ("a" * 128,) * 16


@pytest.mark.parametrize(("tags", "problem"), [
    ("main", "must be a list of strings"),
    (["main", 1], "must be a list of strings"),
    (["a"] * 17, "has 17 tags, more than the 16 allowed"),
    (["a" * 129], f'"{"a" * 57}..." is longer than 128 characters'),
    (["Main"], '"Main" may hold only lowercase letters, digits, "-", "_" and "." '
     "(and not be empty)"),
    ([""], '"" may hold only lowercase letters, digits, "-", "_" and "." (and not be empty)'),
    (["a/b"], '"a/b" may hold only lowercase letters, digits, "-", "_" and "." '
     "(and not be empty)"),
])
def test_bad_tags_are_refused(tags: object, problem: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        check_tags(tags)
    assert (caught.value.field, caught.value.problem) == ("tags", problem)


def test_a_note_is_an_optional_short_string() -> None:
    assert check_note(None) is None
    assert check_note("n" * 4096) == "n" * 4096


@pytest.mark.parametrize(("note", "problem"), [
    (3, "must be a string, not a number"),
    ("n" * 4097, "is 4097 characters, more than the 4096 allowed"),
    ("a\0b", "may not hold a NUL character"),
])
def test_bad_notes_are_refused(note: object, problem: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        check_note(note)
    assert (caught.value.field, caught.value.problem) == ("note", problem)

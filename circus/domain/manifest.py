"""A builds.sr.ht build manifest, parsed and checked before a job is accepted: no I/O.

Circus runs the manifests builds.sr.ht runs (packages come from a Nix package set instead
of a distribution), so the keys and their meaning are sr.ht's. The checks are stricter
than sr.ht's where being lax would let a typo or a hostile value through: an unknown key
is refused rather than ignored (it is nearly always a misspelt one), a value that reaches
a shell, git or a mail header may not carry what would change its meaning there (a NUL,
a newline in a header, a leading `-` read as an option), and two sources may not clone
into one directory nor two artifacts share a file name.

YAML aliases are refused outright (`manifest: YAML aliases are not allowed`), and so are
merge keys (`<<`), which only make sense with them: without aliases a document of at most
`MAX_MANIFEST` bytes cannot hold more nodes than it has bytes, so no "billion laughs"
expansion is possible, and a manifest is short enough to say everything once.

Every refusal is an `InvalidValue` whose `field` names the manifest key at fault
(`manifest` for the document as a whole, `tasks[2]`, `environment.FOO`,
`triggers[0].url`...) and whose problem says in plain words what is wrong.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from typing import Any

import attrs
import yaml

from circus.domain.errors import InvalidValue

MAX_MANIFEST = 16 * 1024
MAX_ARTIFACTS = 8
MAX_TAGS = 16
MAX_TAG = 128
MAX_NOTE = 4096
# Task names become file names on the build host, which allow 255 bytes.
MAX_TASK_NAME = 128

# `complete-build` (a command sr.ht puts on a job's PATH) ends the job early as a
# success: the remaining tasks are skipped. In Circus it is the script below, so a task
# that exits with this status has asked for that, and the runner must not read it as a
# failure.
COMPLETE_BUILD_EXIT = 255
COMPLETE_BUILD_SCRIPT = "#!/bin/sh\nexit 255\n"

# What sr.ht's runner writes before every task script.
TASK_PREAMBLE = "#!/usr/bin/env bash\n. ~/.buildenv\nset -x\nset -e\n"

KEYS = ("image", "arch", "packages", "repositories", "sources", "environment", "secrets",
        "tasks", "triggers", "artifacts", "shell", "oauth")
ACTIONS = ("webhook", "email")
CONDITIONS = ("always", "failure", "success")
TRIGGER_KEYS = {"webhook": ("action", "condition", "url"),
                "email": ("action", "condition", "to", "cc", "in_reply_to")}
SCHEMES = ("git",)

IMAGE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}(?:/[A-Za-z0-9._+-]{1,64})?")
ARCH_RE = re.compile(r"[A-Za-z0-9_]{1,32}")
# A Nix attribute path: no component is empty or starts with "-".
_ATTR = r"[A-Za-z0-9_+][A-Za-z0-9_+-]*"
PACKAGE_RE = re.compile(rf"{_ATTR}(?:\.{_ATTR})*")
REPOSITORY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
TASK_NAME_RE = re.compile(r"[A-Za-z0-9_-]+")
UUID_RE = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
TAG_RE = re.compile(r"[a-z0-9._-]{1,128}")
# `scm::URL`; the scm is a word, so the "::" of an IPv6 address (`https://[::1]/`) is not
# taken for one.
_SCM_RE = re.compile(r"(?P<scm>[A-Za-z][A-Za-z0-9+.-]*)::(?P<url>.*)", re.S)
# What git check-ref-format refuses in a ref, as far as a checkout by name cares.
_REF_BAD = re.compile(r"[\s\x00-\x1f\x7f~^:?*\[\\]|\.\.|@\{")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")

_NULL = "tag:yaml.org,2002:null"
_MERGE = "tag:yaml.org,2002:merge"


@attrs.frozen
class Source:
    """A repository a job clones before its tasks: `URL`, `URL#ref` or `git::URL`."""

    url: str
    ref: str | None = None
    scheme: str | None = None


@attrs.frozen
class Task:
    name: str
    script: str


@attrs.frozen
class Trigger:
    """What to do when the job ends: call `url` (webhook) or mail `to` (email)."""

    action: str
    condition: str
    url: str | None = None
    to: str | None = None
    cc: str | None = None
    in_reply_to: str | None = None


@attrs.frozen
class Manifest:
    image: str
    arch: str | None
    packages: tuple[str, ...]
    repositories: dict[str, str]
    sources: tuple[Source, ...]
    # A list stays a list: buildenv() makes it a bash array.
    environment: dict[str, str | tuple[str, ...]]
    secrets: tuple[str, ...]
    tasks: tuple[Task, ...]
    triggers: tuple[Trigger, ...]
    artifacts: tuple[str, ...]
    shell: bool
    oauth: str | None


def parse(text: str) -> Manifest:
    """The manifest `text` holds, or an InvalidValue naming the first problem."""
    root, data = _load(text)
    # Unknown keys first: `imgae: x` is better reported as a typo than as a missing image.
    for key in data:
        if key not in KEYS:
            raise InvalidValue(str(key), f"is not a manifest key; the keys are "
                                         f"{', '.join(KEYS)}")
    return Manifest(
        image=_image(data.get("image")),
        arch=_arch(data.get("arch")),
        packages=_packages(data.get("packages")),
        repositories=_repositories(data.get("repositories")),
        sources=_sources(data.get("sources")),
        environment=_environment(_value_node(root, "environment")),
        secrets=_secrets(data.get("secrets")),
        tasks=_tasks(data.get("tasks")),
        triggers=_triggers(data.get("triggers")),
        artifacts=_artifacts(data.get("artifacts")),
        shell=_shell(data.get("shell")),
        oauth=_oauth(data.get("oauth")),
    )


def source_dir(source: Source) -> str:
    """The directory the source is cloned into, as sr.ht names it: the last component of
    the URL's path without `.git` (after the ":" of an scp-like `host:path` too)."""
    url = source.url.rstrip("/")
    separators = "/" if "://" in url else "/:"
    name = re.split(f"[{separators}]", url)[-1]
    return name.removesuffix(".git")


def buildenv(manifest: Manifest) -> str:
    """The text of `~/.buildenv`, which every task sources: the manifest's environment,
    each value quoted so the shell reads it back unchanged."""
    lines = []
    for name, value in manifest.environment.items():
        if isinstance(value, str):
            lines.append(f"export {name}={shlex.quote(value)}\n")
        else:
            items = "".join(f" {shlex.quote(item)}" for item in value)
            lines.append(f"{name}=({items} )\nexport {name}\n")
    return "".join(lines)


def task_script(task: Task) -> str:
    """The script the task runs: sr.ht's preamble (the environment, trace, stop at the
    first failing command), then the task's own."""
    script = task.script if task.script.endswith("\n") else task.script + "\n"
    return TASK_PREAMBLE + script


def check_tags(tags: object) -> tuple[str, ...]:
    """The `tags` of a job submitted to POST /api/jobs (none when absent)."""
    if tags is None:
        return ()
    if not isinstance(tags, list | tuple) or not all(isinstance(t, str) for t in tags):
        raise InvalidValue("tags", "must be a list of strings")
    if len(tags) > MAX_TAGS:
        raise InvalidValue("tags", f"has {len(tags)} tags, more than the {MAX_TAGS} allowed")
    for tag in tags:
        if len(tag) > MAX_TAG:
            raise InvalidValue("tags", f"{_show(tag)} is longer than {MAX_TAG} characters")
        if not TAG_RE.fullmatch(tag):
            raise InvalidValue("tags", f"{_show(tag)} may hold only lowercase letters, "
                                       'digits, "-", "_" and "." (and not be empty)')
    return tuple(tags)


def check_note(note: object) -> str | None:
    """The `note` of a job submitted to POST /api/jobs (none when absent)."""
    if note is None:
        return None
    if not isinstance(note, str):
        raise InvalidValue("note", f"must be a string, not {_kind(note)}")
    if len(note) > MAX_NOTE:
        raise InvalidValue("note", f"is {len(note)} characters, more than the {MAX_NOTE} "
                                   "allowed")
    # The database's text type cannot hold a NUL.
    if "\x00" in note:
        raise InvalidValue("note", "may not hold a NUL character")
    return note


# The document


def _load(text: str) -> tuple[Any, dict[Any, Any]]:
    """The document's root node (for the YAML text of environment values) and its data."""
    # Lone surrogates are counted, not refused, here: the YAML reader refuses them.
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_MANIFEST:
        raise InvalidValue("manifest", f"is {size} bytes, more than the {MAX_MANIFEST} "
                                       "allowed")
    try:
        node, data = _compose(text)
    except yaml.YAMLError as error:
        raise InvalidValue("manifest", f"is not valid YAML: {_yaml_problem(error)}") from None
    except RecursionError:
        # PyYAML composes nested collections recursively.
        raise InvalidValue("manifest", "is nested too deeply") from None
    if node is None:
        raise InvalidValue("manifest", "is empty")
    if not isinstance(node, yaml.MappingNode) or not isinstance(data, dict):
        raise InvalidValue("manifest", "must be a mapping of keys such as image and tasks")
    return node, data


def _compose(text: str) -> tuple[Any, object]:
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            raise InvalidValue("manifest", f"YAML aliases are not allowed "
                                           f"({_where(event.start_mark)})")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        _check_mappings(node)
        return node, loader.construct_document(node)
    finally:
        loader.dispose()


def _check_mappings(root: Any) -> None:
    """Refuse merge keys, and a key given twice (PyYAML would keep the last silently)."""
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            seen: set[tuple[str, str]] = set()
            for key, value in node.value:
                if key.tag == _MERGE:
                    raise InvalidValue("manifest", f"YAML merge keys (<<) are not allowed "
                                                   f"({_where(key.start_mark)})")
                if isinstance(key, yaml.ScalarNode):
                    if (key.tag, key.value) in seen:
                        raise InvalidValue("manifest", f"the key {_show(str(key.value))} "
                                                       f"comes twice "
                                                       f"({_where(key.start_mark)})")
                    seen.add((key.tag, key.value))
                stack.extend((key, value))


def _yaml_problem(error: Any) -> str:
    problem, mark = getattr(error, "problem", None), getattr(error, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} ({_where(mark)})"
    return str(error).strip().splitlines()[0]


def _where(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def _value_node(root: Any, name: str) -> Any:
    for key, value in root.value:
        if isinstance(key, yaml.ScalarNode) and key.value == name:
            return value
    return None


# The keys


def _image(value: object) -> str:
    if value is None:
        raise InvalidValue("image", "is required, such as nixos/unstable")
    image = _string(value, "image")
    if not IMAGE_RE.fullmatch(image):
        raise InvalidValue("image", f"{_show(image)} is not an image name such as "
                                    "nixos/unstable")
    return image


def _arch(value: object) -> str | None:
    if value is None:
        return None
    arch = _string(value, "arch")
    if not ARCH_RE.fullmatch(arch):
        raise InvalidValue("arch", f"{_show(arch)} is not an architecture such as x86_64")
    return arch


def _packages(value: object) -> tuple[str, ...]:
    def check(name: str, field: str) -> None:
        if not PACKAGE_RE.fullmatch(name):
            raise InvalidValue(field, f"{_show(name)} is not a package attribute: letters, "
                                      'digits, "-", "_", "+" and ".", no part empty or '
                                      'starting with "-"')
    return _string_list(value, "packages", check)


def _repositories(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidValue("repositories", "must be a mapping of names to URLs")
    found = {}
    for name, url in value.items():
        if not isinstance(name, str) or not REPOSITORY_RE.fullmatch(name):
            raise InvalidValue("repositories", f"the name {_show(str(name))} may hold only "
                                               'letters, digits, "-", "_" and "."')
        found[name] = _required_line(url, f"repositories.{name}")
    return found


def _sources(value: object) -> tuple[Source, ...]:
    sources = tuple(_source(text, f"sources[{i}]")
                    for i, text in enumerate(_string_list(value, "sources")))
    dirs: dict[str, int] = {}
    for i, source in enumerate(sources):
        other = dirs.setdefault(source_dir(source), i)
        if other != i:
            raise InvalidValue(f"sources[{i}]", f"clones into {_show(source_dir(source))} "
                                                f"like sources[{other}]")
    return sources


def _source(text: str, field: str) -> Source:
    scheme, url = None, text
    if found := _SCM_RE.fullmatch(text):
        scheme, url = found["scm"], found["url"]
        if scheme not in SCHEMES:
            raise InvalidValue(field, f"{_show(scheme)} sources are not supported, only git "
                                      "(git::URL)")
    url, hash_sign, ref = url.partition("#")
    # git would read a leading "-" as an option.
    if not url or url.startswith("-") or _SPACE_OR_CONTROL.search(url):
        raise InvalidValue(field, f"{_show(url)} is not a repository URL")
    if hash_sign and (not ref or ref.startswith("-") or _REF_BAD.search(ref)):
        raise InvalidValue(field, f"{_show(ref)} is not a git ref (a branch, tag or commit)")
    source = Source(url=url, ref=ref or None, scheme=scheme)
    name = source_dir(source)
    if name in ("", ".", "..") or name.startswith("-") or "/" in name:
        raise InvalidValue(field, f"would clone into {_show(name)}, which is not a "
                                  "directory name")
    return source


def _environment(node: Any) -> dict[str, str | tuple[str, ...]]:
    """Values as their YAML text: `VERSION: 1.10` is "1.10", not the number 1.1."""
    if node is None or node.tag == _NULL:
        return {}
    if not isinstance(node, yaml.MappingNode):
        raise InvalidValue("environment", "must be a mapping of variable names to values")
    found: dict[str, str | tuple[str, ...]] = {}
    for key, value in node.value:
        name = _scalar_text(key)
        if name is None or not ENV_NAME_RE.fullmatch(name):
            raise InvalidValue("environment", f"the name {_show(str(key.value))} is not a "
                                              "shell variable name (letters, digits and "
                                              '"_", not starting with a digit)')
        found[name] = _env_value(value, f"environment.{name}")
    return found


def _env_value(node: Any, field: str) -> str | tuple[str, ...]:
    if not isinstance(node, yaml.SequenceNode):
        return _env_text(node, field, "must be a string, a number, a boolean or a list of "
                                      "strings")
    return tuple(_env_text(item, field, "a list may hold only strings, numbers or booleans")
                 for item in node.value)


def _env_text(node: Any, field: str, problem: str) -> str:
    text = _scalar_text(node)
    if text is None:
        raise InvalidValue(field, problem)
    # A shell variable cannot hold a NUL.
    if "\x00" in text:
        raise InvalidValue(field, "may not hold a NUL character")
    return text


def _scalar_text(node: Any) -> str | None:
    if not isinstance(node, yaml.ScalarNode) or node.tag == _NULL:
        return None
    return str(node.value)


def _secrets(value: object) -> tuple[str, ...]:
    def check(secret: str, field: str) -> None:
        if not UUID_RE.fullmatch(secret):
            raise InvalidValue(field, f"{_show(secret)} is not a secret's UUID")
    return _string_list(value, "secrets", check)


def _tasks(value: object) -> tuple[Task, ...]:
    if value is None:
        raise InvalidValue("tasks", "is required: a list of tasks to run")
    if not isinstance(value, list):
        raise InvalidValue("tasks", "must be a list; each task is a mapping of one name to "
                                    "a script")
    if not value:
        raise InvalidValue("tasks", "must hold at least one task")
    tasks = tuple(_task(item, f"tasks[{i}]") for i, item in enumerate(value))
    names: set[str] = set()
    for task in tasks:
        if task.name in names:
            raise InvalidValue("tasks", f"the name {_show(task.name)} comes twice")
        names.add(task.name)
    return tasks


def _task(value: object, field: str) -> Task:
    if not isinstance(value, dict) or len(value) != 1:
        raise InvalidValue(field, "each task is a mapping of one name to a script")
    [(name, script)] = value.items()
    if not isinstance(name, str) or not TASK_NAME_RE.fullmatch(name):
        raise InvalidValue(field, f"the name {_show(str(name))} may hold only letters, "
                                  'digits, "-" and "_"')
    if len(name) > MAX_TASK_NAME:
        raise InvalidValue(field, f"the name is longer than {MAX_TASK_NAME} characters")
    if not isinstance(script, str):
        raise InvalidValue(field, f"the script of {_show(name)} must be a string, not "
                                  f"{_kind(script)}")
    if "\x00" in script:
        raise InvalidValue(field, f"the script of {_show(name)} may not hold a NUL "
                                  "character")
    return Task(name=name, script=script)


def _triggers(value: object) -> tuple[Trigger, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidValue("triggers", "must be a list of triggers")
    return tuple(_trigger(item, f"triggers[{i}]") for i, item in enumerate(value))


def _trigger(value: object, field: str) -> Trigger:
    if not isinstance(value, dict):
        raise InvalidValue(field, "must be a mapping with an action and a condition")
    action = value.get("action")
    if action not in ACTIONS:
        raise InvalidValue(f"{field}.action", 'must be "webhook" or "email"')
    known = TRIGGER_KEYS[action]
    for key in value:
        if key not in known:
            raise InvalidValue(f"{field}.{key}", f"is not a key of {action} triggers; they "
                                                 f"take {', '.join(known)}")
    if value.get("condition") not in CONDITIONS:
        raise InvalidValue(f"{field}.condition", 'must be "always", "failure" or "success"')
    if action == "webhook":
        return Trigger(action=action, condition=value["condition"],
                       url=_webhook_url(value.get("url"), f"{field}.url"))
    to = _required_line(value.get("to"), f"{field}.to")
    if "@" not in to:
        raise InvalidValue(f"{field}.to", f"{_show(to)} is not an email address")
    return Trigger(action=action, condition=value["condition"], to=to,
                   cc=_line(value.get("cc"), f"{field}.cc"),
                   in_reply_to=_line(value.get("in_reply_to"), f"{field}.in_reply_to"))


def _webhook_url(value: object, field: str) -> str:
    url = _required_line(value, field)
    if not url.startswith(("http://", "https://")) or _SPACE_OR_CONTROL.search(url):
        raise InvalidValue(field, f"{_show(url)} is not an http:// or https:// URL")
    return url


def _artifacts(value: object) -> tuple[str, ...]:
    if isinstance(value, list) and len(value) > MAX_ARTIFACTS:
        raise InvalidValue("artifacts", f"at most {MAX_ARTIFACTS} are kept")
    artifacts = _string_list(value, "artifacts", _check_artifact)
    # Artifacts are stored by file name, so two with one name would overwrite each other.
    names: dict[str, int] = {}
    for i, path in enumerate(artifacts):
        other = names.setdefault(path.rsplit("/", 1)[-1], i)
        if other != i:
            raise InvalidValue(f"artifacts[{i}]", f"has the file name of artifacts[{other}]")
    return artifacts


def _check_artifact(path: str, field: str) -> None:
    """A path relative to the home directory (`~/x`, or plain `x`) or absolute."""
    if "\x00" in path:
        raise InvalidValue(field, "may not hold a NUL character")
    if not path or path.endswith("/") or path in ("~", ".", ".."):
        raise InvalidValue(field, f"{_show(path)} does not name a file")
    # `~user/` would reach into another account's home.
    if path.startswith("~") and not path.startswith("~/"):
        raise InvalidValue(field, f'{_show(path)} may start with "~/" but not "~name"')


def _shell(value: object) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidValue("shell", f"must be true or false, not {_kind(value)}")
    return value


def _oauth(value: object) -> str | None:
    return _line(value, "oauth")


# Shared checks


def _string(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidValue(field, f"must be a string, not {_kind(value)}")
    return value


def _string_list(value: object, field: str,
                 check: Callable[[str, str], None] | None = None) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidValue(field, f"must be a list of strings, not {_kind(value)}")
    for i, item in enumerate(value):
        _string(item, f"{field}[{i}]")
        if check is not None:
            check(item, f"{field}[{i}]")
    return tuple(value)


def _line(value: object, field: str) -> str | None:
    """A one-line string (it may end up in a mail header), or None when absent."""
    return None if value is None else _required_line(value, field)


def _required_line(value: object, field: str) -> str:
    if value is None:
        raise InvalidValue(field, "is required")
    text = _string(value, field)
    if not text.strip() or _CONTROL.search(text):
        raise InvalidValue(field, "must be one line of text")
    return text


def _kind(value: object) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _show(text: str) -> str:
    """A value quoted for a message: escaped, and cut short if long."""
    shown = text if len(text) <= 60 else text[:57] + "..."
    return json.dumps(shown, ensure_ascii=False)

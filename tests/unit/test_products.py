"""circus.nix.products: reading `nix-support/hydra-build-products` and `hydra-metrics`,
and the rule that nothing a build names is read from outside its outputs, whether by a
`..`, an absolute path or a symlink. Trees are built in tmp_path; where the module wants
store paths, its STORE_DIR is pointed at a tmp directory."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path, PurePosixPath

import pytest

from circus.nix import products
from circus.nix.products import Escape, Metric, Product, parse_metrics, parse_products

OUT = "/nix/store/ab9zv2y5gm8hr6g318p0s6kaclwj4slr-hello-2.10"

# -- parsing -----------------------------------------------------------------------------


def test_a_product_line_gives_type_subtype_path_and_name() -> None:
    assert parse_products(f"file binary-dist {OUT}/hello.tar.gz\n") == [
        Product("file", "binary-dist", "hello.tar.gz", f"{OUT}/hello.tar.gz")]


def test_the_default_path_is_the_fourth_word() -> None:
    [product] = parse_products(f"doc manual {OUT}/share/doc index.html")
    assert (product.path, product.default_path, product.name) == (
        f"{OUT}/share/doc", "index.html", "doc")


def test_a_quoted_path_may_hold_spaces() -> None:
    [product] = parse_products(f'file source-dist "{OUT}/my file.tar.gz" \n')
    assert product.path == f"{OUT}/my file.tar.gz"  # quotes gone, spaces kept
    assert product.name == "my file.tar.gz"
    assert product.default_path == ""


def test_blank_and_malformed_lines_are_skipped_the_rest_kept() -> None:
    text = "\n".join([
        "",
        "   ",
        "file",                                  # no subtype, no path
        "file binary-dist",                      # no path
        f"fi/le binary-dist {OUT}/a",            # a type is a word
        f"file binary-dist {OUT}/a default extra",  # one word too many
        f"  report coverage {OUT}/coverage  ",   # surrounding blanks are fine
    ])
    assert parse_products(text) == [
        Product("report", "coverage", "coverage", f"{OUT}/coverage")]


def test_parsing_looks_nothing_up() -> None:
    # Paths stay the build's claims; the check is locate's, not the parser's.
    [product] = parse_products("file binary-dist /etc/passwd")
    assert product.path == "/etc/passwd"
    assert (product.file_size, product.sha256) == (None, None)


def test_metrics_lines_are_name_value_and_optional_unit() -> None:
    text = "build.time 12.5 s\nbinary.size 1024\n\nnot-a-metric\n"
    assert parse_metrics(text) == [Metric("build.time", 12.5, "s"),
                                   Metric("binary.size", 1024.0, "")]


def test_metrics_that_are_not_finite_numbers_are_skipped() -> None:
    text = "a twelve\nb nan\nc inf\nd -inf\ne 1e400\nf -3\n"
    assert parse_metrics(text) == [Metric("f", -3.0)]


def test_a_repeated_metric_keeps_its_last_value() -> None:
    assert parse_metrics("x 1\ny 2\nx 3 ms\n") == [Metric("x", 3.0, "ms"), Metric("y", 2.0)]


# -- output roots and locate -------------------------------------------------------------


@pytest.mark.parametrize(("path", "root"), [
    (OUT, OUT),
    (f"{OUT}/bin/hello", None),   # inside an output, not an output
    ("/tmp/hello", None),
    ("/nix/store", None),
    ("/nix/store/..", None),
    ("relative/path", None),
])
def test_only_a_store_path_is_an_output_root(path: str, root: str | None) -> None:
    found = products.output_root(path)
    assert (None if found is None else str(found)) == root


@pytest.mark.parametrize("path", [
    "/etc/passwd",
    f"{OUT}-evil/file",               # a sibling whose name starts the same
    "relative/to/nothing",
    "/nix/store/9df65igwjmf2wbw0gbrrgair6piqjgmi-glibc-2.31/lib/libc.so",
])
def test_a_product_outside_every_output_is_refused(path: str) -> None:
    with pytest.raises(Escape, match=f"^{re.escape(path)} is not inside the build's outputs$"):
        products.locate(path, [OUT, "/not/a/store/path"])


def test_dot_dot_out_of_an_output_is_refused() -> None:
    other = "/nix/store/9df65igwjmf2wbw0gbrrgair6piqjgmi-glibc-2.31"
    with pytest.raises(Escape, match=r"'\.\.' leaves"):
        products.locate(f"{OUT}/../{other.rsplit('/', 1)[1]}/lib", [OUT])


def test_a_product_inside_a_missing_output_is_none() -> None:
    assert products.locate(f"{OUT}-not-built/file", [f"{OUT}-not-built"]) is None


# -- resolve_inside ----------------------------------------------------------------------


def _root(tmp_path: Path) -> Path:
    root = tmp_path / "out"
    (root / "share" / "doc").mkdir(parents=True)
    (root / "share" / "doc" / "index.html").write_text("<html>")
    (tmp_path / "secret").write_text("host file")
    return root


def test_a_plain_path_resolves_to_itself(tmp_path: Path) -> None:
    root = _root(tmp_path)
    assert products.resolve_inside(root, "share/doc/index.html") == \
        root / "share/doc/index.html"
    assert products.resolve_inside(root, "share/doc/../doc/index.html") == \
        root / "share/doc/index.html"
    assert products.resolve_inside(root, "") == root


def test_a_missing_path_is_none(tmp_path: Path) -> None:
    root = _root(tmp_path)
    assert products.resolve_inside(root, "share/nothing") is None
    assert products.resolve_inside(root, "share/doc/index.html/below") is None


def test_symlinks_that_stay_inside_are_followed(tmp_path: Path) -> None:
    root = _root(tmp_path)
    (root / "rel").symlink_to("share/doc")
    (root / "share" / "up").symlink_to("../share/doc/index.html")
    (root / "abs").symlink_to(root / "share" / "doc" / "index.html")
    (root / "chain").symlink_to("rel")
    target = root / "share" / "doc" / "index.html"
    assert products.resolve_inside(root, "rel/index.html") == target
    assert products.resolve_inside(root, "share/up") == target
    assert products.resolve_inside(root, "abs") == target
    assert products.resolve_inside(root, "chain/index.html") == target


def test_an_absolute_symlink_out_is_refused(tmp_path: Path) -> None:
    root = _root(tmp_path)
    (root / "share" / "leak").symlink_to(tmp_path / "secret")
    with pytest.raises(Escape, match=f"points to {re.escape(str(tmp_path / 'secret'))}, "
                                     f"outside {re.escape(str(root))}$"):
        products.resolve_inside(root, "share/leak")


def test_a_relative_symlink_out_is_refused(tmp_path: Path) -> None:
    root = _root(tmp_path)
    (root / "share" / "leak").symlink_to("../../secret")
    with pytest.raises(Escape, match=r"'\.\.' leaves"):
        products.resolve_inside(root, "share/leak")


def test_an_absolute_symlink_that_dot_dots_out_is_refused(tmp_path: Path) -> None:
    # Lexically under the root, but its `..` climbs out: checked step by step.
    root = _root(tmp_path)
    (root / "sneaky").symlink_to(f"{root}/../secret")
    with pytest.raises(Escape, match=r"'\.\.' leaves"):
        products.resolve_inside(root, "sneaky")


def test_a_symlink_loop_is_refused(tmp_path: Path) -> None:
    root = _root(tmp_path)
    (root / "a").symlink_to("b")
    (root / "b").symlink_to("a")
    with pytest.raises(Escape, match="too many symlinks below"):
        products.resolve_inside(root, "a")


def test_a_root_that_is_a_symlink_or_an_absolute_rel_is_refused(tmp_path: Path) -> None:
    root = _root(tmp_path)
    link = tmp_path / "link-out"
    link.symlink_to(root)
    with pytest.raises(Escape, match=r"is a symlink$"):
        products.resolve_inside(link, "share")
    with pytest.raises(Escape, match="is not relative to"):
        products.resolve_inside(root, "/etc/passwd")
    with pytest.raises(Escape, match=r"'\.\.' leaves"):
        products.resolve_inside(root, "../secret")


# -- opening -----------------------------------------------------------------------------


def test_only_regular_files_are_opened(tmp_path: Path) -> None:
    root = _root(tmp_path)
    regular = root / "share" / "doc" / "index.html"
    (root / "link").symlink_to(regular)
    fifo = root / "fifo"
    os.mkfifo(fifo)
    handle = products.open_regular(regular)
    assert handle is not None
    with handle:
        assert handle.read() == b"<html>"
    # A symlink is not followed, a FIFO is not waited on, a directory is not a file.
    for other in (root / "link", fifo, root / "share", root / "missing"):
        assert products.open_regular(other) is None, other
        assert not products.is_regular(other)
    assert products.is_regular(regular)


# -- products_of, metrics_of, failed_with_output -----------------------------------------


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory the module takes for /nix/store, so outputs can live in tmp_path."""
    store = tmp_path / "store"
    store.mkdir()
    monkeypatch.setattr(products, "STORE_DIR", str(store))
    return store


def _output(store: Path, name: str, support: dict[str, str] | None = None) -> Path:
    out = store / name
    (out / "nix-support").mkdir(parents=True)
    for file, text in (support or {}).items():
        (out / "nix-support" / file).write_text(text)
    return out


def test_declared_products_inside_get_size_and_hash(store: Path) -> None:
    out = store / "aaaa-pkg"
    tarball = out / "pkg.tar.gz"
    _output(store, "aaaa-pkg", {"hydra-build-products":
                                f"file source-dist {tarball}\ndoc manual {out}/doc\n"})
    tarball.write_bytes(b"tarball bytes")
    (out / "doc").mkdir()
    found = products.products_of({"out": str(out)})
    assert found == [
        Product("file", "source-dist", "pkg.tar.gz", str(tarball), "", 13,
                hashlib.sha256(b"tarball bytes").hexdigest()),
        Product("doc", "manual", "doc", f"{out}/doc"),  # a directory: no size, no hash
    ]


def test_products_outside_or_missing_or_through_a_symlink_out_are_dropped(
        store: Path, tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("host file")
    out = store / "aaaa-pkg"
    _output(store, "aaaa-pkg", {"hydra-build-products": "\n".join([
        f"file a {tmp_path}/secret",
        f"file b {out}/missing",
        f"file c {out}/leak",
        f"file d {out}/../aaaa-pkg/../other/file",
        f"file e {out}/ok",
    ])})
    (out / "leak").symlink_to(tmp_path / "secret")
    (out / "ok").write_text("fine")
    assert [p.subtype for p in products.products_of({"out": str(out)})] == ["e"]


def test_a_product_may_live_in_another_output_of_the_build(store: Path) -> None:
    out = _output(store, "aaaa-pkg", {"hydra-build-products":
                                      f"doc manual {store}/bbbb-pkg-doc/share\n"})
    doc = _output(store, "bbbb-pkg-doc")
    (doc / "share").mkdir()
    found = products.products_of({"out": str(out), "doc": str(doc)})
    assert [p.path for p in found] == [f"{doc}/share"]


def test_a_products_file_that_is_a_symlink_out_is_not_read(store: Path,
                                                           tmp_path: Path) -> None:
    outside = tmp_path / "planted"
    outside.write_text(f"file evil {store}/aaaa-pkg/x\n")
    out = _output(store, "aaaa-pkg")
    (out / "x").write_text("x")
    (out / "nix-support" / "hydra-build-products").symlink_to(outside)
    # Not read, so the fallback applies: the output directory itself.
    assert products.products_of({"out": str(out)}) == [
        Product("nix-build", "", "pkg", str(out))]


def test_without_declared_products_each_directory_output_is_one(store: Path) -> None:
    out = _output(store, "aaaa-pkg")
    dev = _output(store, "bbbb-pkg-dev")
    (store / "cccc-script").write_text("#!/bin/sh\n")  # a file output: no product
    (store / "dddd-link").symlink_to(out)  # a symlink output: not a directory
    found = products.products_of({"out": str(out), "dev": str(dev),
                                  "bin": str(store / "cccc-script"),
                                  "lnk": str(store / "dddd-link")})
    assert found == [Product("nix-build", "dev", "pkg-dev", str(dev)),
                     Product("nix-build", "", "pkg", str(out))]


def test_metrics_of_all_outputs_later_ones_win(store: Path) -> None:
    a = _output(store, "aaaa-a", {"hydra-metrics": "size 10 B\ntime 2 s\n"})
    b = _output(store, "bbbb-b", {"hydra-metrics": "size 20 B\n"})
    found = products.metrics_of({"out": str(a), "b": str(b)})
    assert sorted(found, key=lambda m: m.name) == [Metric("size", 20.0, "B"),
                                                   Metric("time", 2.0, "s")]


def test_failed_with_output_is_the_failed_marker_in_any_output(store: Path,
                                                                tmp_path: Path) -> None:
    ok = _output(store, "aaaa-ok")
    failed = _output(store, "bbbb-failed", {"failed": ""})
    assert not products.failed_with_output({"out": str(ok)})
    assert products.failed_with_output({"out": str(ok), "dev": str(failed)})
    # A marker that is a symlink out of the output does not count.
    (tmp_path / "elsewhere").write_text("")
    (ok / "nix-support" / "failed").symlink_to(tmp_path / "elsewhere")
    assert not products.failed_with_output({"out": str(ok)})


def test_product_names_are_the_last_path_component() -> None:
    # The download's file name: a trailing slash does not leave it empty.
    [product] = parse_products(f"doc manual {OUT}/share/doc/")
    assert product.name == PurePosixPath(f"{OUT}/share/doc/").name == "doc"

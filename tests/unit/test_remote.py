"""What the runner tells Nix about a remote builder, and how it reads Nix's failure."""

from __future__ import annotations

import base64

from circus.runner.remote import Machine, builder_failed

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


def machine(**changes: object) -> Machine:
    values: dict = {"id": 1, "name": "b1", "uri": "ssh-ng://root@10.0.0.2",
                    "systems": ("x86_64-linux", "aarch64-linux"), "max_jobs": 4,
                    "speed_factor": 2.0, "supported_features": ("kvm", "big"),
                    "mandatory_features": (), "ssh_key_file": "/k", "public_host_key": KEY}
    values.update(changes)
    return Machine(**values)


def test_the_builders_line_is_nix_machines_format() -> None:
    fields = machine().builders_line().split(" ")
    assert fields[:7] == ["ssh-ng://root@10.0.0.2", "x86_64-linux,aarch64-linux", "/k", "4",
                          "2", "kvm,big", "-"]
    assert base64.b64decode(fields[7]).decode() == KEY


def test_empty_fields_are_dashes() -> None:
    fields = machine(ssh_key_file=None, supported_features=()).builders_line().split(" ")
    assert fields[2] == "-" and fields[5] == "-" and fields[6] == "-"


def test_the_build_runs_only_there() -> None:
    flags = machine().build_flags()
    assert flags[flags.index("--max-jobs") + 1] == "0"
    assert flags[flags.index("--builders") + 1] == machine().builders_line()


def test_a_failed_build_is_the_builds_and_a_lost_machine_is_not() -> None:
    drv, uri = "/nix/store/abc-x.drv", "ssh-ng://root@10.0.0.2"
    assert not builder_failed(f"error: build of '{drv}' on '{uri}' failed: builder for "
                              f"'{drv}' failed with exit code 3\n"
                              f"builder for '{drv}' failed with exit code 1")
    # The connection dropped: Nix words it as its build hook failing.
    assert builder_failed(f"error: unexpected end-of-file\nbuilder for '{drv}' failed with "
                          "exit code 1")
    assert builder_failed("error: unable to start any build; remote machines may not have "
                          "all required system features.")
    assert builder_failed(f"cannot build on '{uri}': error: cannot open connection")


def test_the_address_of_the_uri() -> None:
    assert machine().address == ("root", "10.0.0.2")
    assert machine(uri="ssh://builder.example.org").address == (None, "builder.example.org")
    assert machine(uri="ssh-ng://[fd00::2]").address == (None, "fd00::2")

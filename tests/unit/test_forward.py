"""fiotray.core.forward: the forward's argv, ports, records and stores."""

from __future__ import annotations

import os
import socket
import stat

import pytest

from fiotray.core import forward as fwd
from fiotray.core.errors import FiotrayError
from fiotray.core.forward import Forward, ForwardSpec, RunningForwards, SavedForwards
from fiotray.core.ssh import SshSettings, SshTarget, ssh_argv

TARGET = SshTarget("acme", "gateway-01", "10.42.42.7", "10.42.42.1")


def _forward(fid: str = "0badc0de", **spec: object) -> Forward:
    base = {"factory": "acme", "device": "gateway-01", "kind": "local", "remote_port": 80}
    base.update({"local_port": 18080, **spec})
    return Forward(
        id=fid,
        spec=ForwardSpec(**base).validated(),  # type: ignore[arg-type]
        route="jump",
        pid=4242,
        control_path=f"/run/x/fwd-{fid}",
        log_path=f"/run/x/fwd-{fid}.log",
        started=1.5,
    )


def test_local_forward_argv_binds_loopback_before_the_destination():
    base = ssh_argv(TARGET, SshSettings())
    argv = fwd.forward_argv(base, "local", 18080, 80, "/run/user/1/fiotray/forwards/fwd-1")
    # The forward's options sit before `--`; the destination stays last, alone.
    assert argv[-2:] == ["--", "fio@10.42.42.7"]
    assert argv[: base.index("--")] == base[: base.index("--")]
    head = argv[: argv.index("--")]
    assert head[head.index("-L") + 1] == "127.0.0.1:18080:127.0.0.1:80"
    assert {"-f", "-N"} <= set(head)
    for option in (
        "ExitOnForwardFailure=yes",
        "ServerAliveInterval=15",
        "ServerAliveCountMax=3",
        "ControlMaster=yes",
        "ControlPath=/run/user/1/fiotray/forwards/fwd-1",
        "ControlPersist=no",
    ):
        assert head[head.index(option) - 1] == "-o", option
    # The route's own options are kept: the host key alias and the jump host.
    assert "HostKeyAlias=fiotray.acme.gateway-01" in argv
    assert argv[argv.index("-J") + 1] == "fio@10.42.42.1"


def test_remote_forward_argv():
    argv = fwd.forward_argv(ssh_argv(TARGET, SshSettings()), "remote", 8000, 9000, "/r/fwd-2")
    assert argv[argv.index("-R") + 1] == "9000:127.0.0.1:8000"
    assert "-L" not in argv


@pytest.mark.parametrize("port", [0, -1, 65536, "80; rm -rf /", "0x50", True, None, 8.5, "١٢"])
def test_hostile_ports_are_refused(port):
    with pytest.raises(FiotrayError):
        fwd.validate_port(port)
    with pytest.raises(FiotrayError):
        fwd.forward_options("local", 18080, port, "/r/fwd-3")  # type: ignore[arg-type]


def test_low_local_ports_need_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(FiotrayError, match="below 1024"):
        fwd.validate_local_port(80)
    assert fwd.validate_local_port("8080") == 8080
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert fwd.validate_local_port(80) == 80


@pytest.mark.parametrize(
    "device", ["-oProxyCommand=sh", "a b", "../x", "dev\nice", "", "x" * 2000, "dev\x1b[31m"]
)
def test_hostile_device_names_are_refused(device):
    with pytest.raises(FiotrayError):
        ForwardSpec("acme", device, "local", 80, None).validated()


def test_a_device_name_never_reaches_the_argv_outside_the_alias():
    odd = SshTarget("acme", "Dev;$(reboot)", "10.42.42.7", "10.42.42.1")
    argv = fwd.forward_argv(ssh_argv(odd, SshSettings()), "local", 18080, 80, "/r/fwd-4")
    assert [a for a in argv if "reboot" in a] == [argv[2]]
    assert argv[2].startswith("HostKeyAlias=fiotray-h.")


def test_a_remote_command_or_a_missing_destination_is_refused():
    with_command = ssh_argv(TARGET, SshSettings(), command=["uptime"])
    with pytest.raises(FiotrayError, match="ends with"):
        fwd.forward_argv(with_command, "local", 18080, 80, "/r/fwd-5")


def test_control_path_is_escaped_and_bounded():
    assert fwd.control_path_value("/run/a%b/fwd-1") == "/run/a%%b/fwd-1"
    assert fwd.control_path_value("/run/a b/fwd-1") == '"/run/a b/fwd-1"'
    with pytest.raises(FiotrayError, match="too long"):
        fwd.control_path_value("/" + "d" * 100 + "/fwd-1")
    argv = fwd.control_argv("ssh", "/r/fwd-6", "exit")
    assert argv == ["ssh", "-o", "ControlPath=/r/fwd-6", "-O", "exit", "--", "fiotray-forward"]


def test_master_pid_parsed():
    assert fwd.master_pid("Master running (pid=31337)\r\n") == 31337
    assert fwd.master_pid("Control socket connect(/x): No such file") is None


def test_free_port_is_free_on_loopback():
    port = fwd.pick_free_port()
    assert 1024 <= port < 65536
    # Nothing holds it: it can be bound right away (what ssh then does).
    with socket.create_server(("127.0.0.1", port)):
        pass


def test_urls_only_for_local_web_ports():
    assert _forward(remote_port=80).url == "http://127.0.0.1:18080"
    assert _forward(remote_port=443).url == "https://127.0.0.1:18080"
    assert _forward(remote_port=2345).url is None
    remote = _forward(kind="remote", remote_port=8080)
    assert remote.url is None and remote.address == "gateway-01:127.0.0.1:8080"


def test_saved_forwards_round_trip(tmp_path):
    store = SavedForwards(tmp_path / "config")
    assert store.load() == []
    web = ForwardSpec("acme", "gateway-01", "local", 80, None, "direct")
    gdb = ForwardSpec("acme", "gateway-02", "local", 2345, 2345)
    assert store.add(web) and store.add(gdb)
    assert not store.add(ForwardSpec("acme", "gateway-01", "local", 80, None, "jump"))
    loaded = store.load()
    assert [s.device for s in loaded] == ["gateway-02", "gateway-01"]
    assert loaded[1].route == "jump"  # replaced, not duplicated
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert store.remove(gdb) and not store.remove(gdb)
    assert store.load() == [loaded[1]]


def test_saved_forwards_refuse_a_hostile_file(tmp_path):
    store = SavedForwards(tmp_path)
    store.path.write_text(
        '{"forwards": [{"factory": "acme", "device": "-oProxyCommand=x",'
        ' "kind": "local", "remote_port": 80}]}'
    )
    with pytest.raises(FiotrayError):
        store.load()


def test_running_forwards_round_trip_and_skip_bad_records(tmp_path):
    store = RunningForwards(fwd.forwards_runtime_dir(tmp_path / "run"))
    one, two = _forward("00000001"), _forward("00000002", remote_port=443)
    store.add(one)
    store.add(two)
    assert store.load() == [one, two]
    store.remove(one.id)
    assert store.load() == [two]
    # A record someone tampered with is left out, not trusted.
    data = store.path.read_text().replace('"pid": 4242', '"pid": "x"')
    store.path.write_text(data)
    assert store.load() == []
    store.path.write_text("not json")
    assert store.load() == []
    control, log = store.paths_for("0000000a")
    assert control.endswith("/forwards/fwd-0000000a") and log.endswith(".log")
    with pytest.raises(FiotrayError):
        store.paths_for("../../x")
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700


def test_pid_is_forward_only_for_the_ssh_of_that_socket(tmp_path):
    assert fwd.pid_is_forward(os.getpid(), "/r/fwd-7") is False  # alive, but not that ssh
    assert fwd.pid_is_forward(1, "/r/fwd-7") is False
    assert fwd.pid_is_forward(2**22 + 12345, "/r/fwd-7") is False  # no such process


def test_log_tail_drops_host_key_noise(tmp_path):
    log = tmp_path / "fwd.log"
    log.write_text(
        "Warning: Permanently added 'x' (ED25519) to the list of known hosts.\n"
        "bind [127.0.0.1]:18080: Address already in use\n"
        "channel_setup_fwd_listener_tcpip: cannot listen to port: 18080\n"
        "Could not request local forwarding.\n"
    )
    tail = fwd.log_tail(log)
    assert "Address already in use" in tail and "Warning" not in tail
    assert fwd.log_tail(tmp_path / "none") == ""
    log.write_bytes(b"Banner from the device \x1b]0;owned\x07\n")
    assert "\x1b" not in fwd.log_tail(log) and "\\x1b]0;owned" in fwd.log_tail(log)


def test_forward_device_port_is_short_for_forward_start():
    from fiotray.cli.main import parse_args

    args = parse_args(["forward", "gateway-01", "80", "--local", "18080", "--save"])
    assert (args.forward_command, args.device, args.port) == ("start", "gateway-01", "80")
    assert (args.local, args.save, args.remote) == ("18080", True, False)
    args = parse_args(["forward", "--factory", "acme", "gateway-01", "443"])
    assert (args.forward_command, args.factory) == ("start", "acme")
    assert parse_args(["forward", "list", "--json"]).json is True
    args = parse_args(["forward", "stop", "0badc0de"])
    assert (args.forward_command, args.id) == ("stop", "0badc0de")
    # A device called like an action is reached through `start`.
    assert parse_args(["forward", "start", "list", "22"]).device == "list"
    # Only as the command: a device named "forward" is just a device elsewhere.
    assert parse_args(["ssh", "forward", "--print"]).device == "forward"


def test_a_saved_forward_runs_in_a_live_forward_of_the_same_ports():
    live = _forward("00000001", remote_port=80, local_port=18080)
    assert ForwardSpec("acme", "gateway-01", "local", 80, 18080).runs_in([live])
    # Saved without a local port: any local port will do.
    assert ForwardSpec("acme", "gateway-01", "local", 80).runs_in([live])
    assert not ForwardSpec("acme", "gateway-01", "local", 80, 18081).runs_in([live])
    assert not ForwardSpec("acme", "gateway-02", "local", 80).runs_in([live])
    assert not ForwardSpec("acme", "gateway-01", "local", 443).runs_in([live])
    assert not ForwardSpec("acme", "gateway-01", "local", 80).runs_in([live.with_alive(False)])

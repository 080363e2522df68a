"""Issue 23, items 3 and 8: what a new user meets on the first day.

- Item 3: an argument rule with `"optional": true` holds when the call leaves the argument out (the server's default
  applies) and judges a present value as usual; `toolgate check --upstream` warns when a rule that is not optional
  names an argument the tool does not require, and suggests `optional`.
- Item 8: `version: 1` (unquoted YAML, or the JSON integer); JSON errors by line and column; did-you-mean for a
  misspelled key; `toolgate stdio --help` lists only the flags stdio takes; `bash Tests/e2e/run.sh FILE` works as the
  README writes it; README and `--help` stand on their own; an `--upstream-command` that never answers names
  toolgate's start timeout and its flag.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from helpers import denial_of, handshake_session, run_async, text_of

ROOT = Path(__file__).resolve().parents[2]


def binary() -> str:
    return os.environ["TOOLGATE_BIN"]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TOOLGATE_")}


def check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([binary(), "check", *args], capture_output=True, text=True, timeout=60, env=clean_env())


# --- item 3: "if present" ----------------------------------------------------------------------------------------

# `scale(replicas: int, force: bool = False, tag: str = "")` in upstream_mcp_server.py: `tag` is not required.
OPTIONAL_POLICY = {"version": "1", "default": "deny", "tools": {
    "scale": {"arguments": [
        {"path": "replicas", "op": "lte", "value": 5},
        {"path": "tag", "op": "max_length", "value": 8, "optional": True, "reason": "tags are at most 8 characters"},
    ]},
    "post_message": {"arguments": [{"path": "text", "op": "max_length", "value": 8}]},
}}


def test_an_optional_rule_lets_an_absent_argument_through(mcp_upstream_json, toolgate):
    tg = toolgate(mcp_upstream_json.url, OPTIONAL_POLICY)

    async def body() -> None:
        async with handshake_session(tg.url) as session:
            result = await session.call_tool("scale", {"replicas": 3})
            assert result.is_error is False, text_of(result)
            result = await session.call_tool("scale", {"replicas": 3, "tag": "short"})
            assert result.is_error is False, text_of(result)
            result = await session.call_tool("scale", {"replicas": 3, "tag": "much too long"})
            assert denial_of(result)["reason"] == "invalid_arguments", text_of(result)
            assert "tags are at most 8 characters" in text_of(result)
            result = await session.call_tool("scale", {"replicas": 3, "tag": 12})
            assert denial_of(result)["reason"] == "invalid_arguments", "a present value keeps the type rules"
            # Without optional, leaving the argument out is refused, as before.
            result = await session.call_tool("post_message", {"channel_id": 1})
            assert denial_of(result)["reason"] == "invalid_arguments", text_of(result)

    run_async(body)


def test_check_upstream_suggests_optional_for_an_argument_the_tool_does_not_require(mcp_upstream_json, tmp_path):
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(OPTIONAL_POLICY))
    out = check(str(policy), "--upstream", mcp_upstream_json.url)
    assert out.returncode == 0, out.stderr
    # (The upstream's other tools are reported as uncovered too; only the argument warnings matter here.)
    warnings = [line for line in out.stderr.splitlines() if line.startswith("warning: ") and ".arguments[" in line]
    assert warnings == [
        f'warning: {policy}: tools.post_message.arguments[0].path: "text" is not in post_message\'s required arguments, '
        'so a call that leaves it out is denied; add "optional": true to judge it only when present'
    ], out.stderr
    fixed = json.loads(json.dumps(OPTIONAL_POLICY))
    fixed["tools"]["post_message"]["arguments"][0]["optional"] = True
    policy.write_text(json.dumps(fixed))
    clean = check(str(policy), "--upstream", mcp_upstream_json.url)
    assert clean.returncode == 0 and ".arguments[" not in clean.stderr, clean.stderr


def test_optional_must_be_a_boolean(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\ntools:\n  scale:\n    arguments:\n      - {path: tag, op: max_length, value: 8, optional: yes please}\n")
    out = check(str(policy))
    assert out.returncode == 1
    assert out.stderr.strip() == f"{policy}: tools.scale.arguments[0].optional: must be a boolean, got string", out.stderr


# --- item 8 --------------------------------------------------------------------------------------------------------

def test_version_1_unquoted_in_yaml_and_as_a_json_integer(tmp_path):
    yaml = tmp_path / "policy.yaml"
    yaml.write_text("version: 1\ndefault: deny\ntools:\n  echo: {}\n")
    as_json = tmp_path / "policy.json"
    as_json.write_text('{"version": 1, "default": "deny", "tools": {"echo": {}}}')
    for path in (yaml, as_json):
        out = check(str(path))
        assert out.returncode == 0, out.stderr
        assert f"{path}: ok" in out.stdout, out.stdout
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("version: 2\n")
    out = check(str(wrong))
    assert out.returncode == 1 and f'{wrong}: version: must be "1"' in out.stderr, out.stderr


def test_json_errors_give_line_and_column(tmp_path, raw_upstream):
    policy = tmp_path / "policy.json"
    policy.write_text('{\n  "version": "1",\n  "tools": {\n    "echo": {"action": "allow",}\n  }\n}\n')
    out = check(str(policy))
    assert out.returncode == 1
    assert out.stderr.strip() == f"{policy}: invalid JSON at line 4, column 32: expected a string key", out.stderr
    assert "byte" not in out.stderr
    good = tmp_path / "good.json"
    good.write_text('{"version": "1"}')
    grants = tmp_path / "grants.json"
    grants.write_text('{"grants": [\n  {"name": "ci", "sha256": "00"\n]}\n')
    serve = subprocess.run(
        [binary(), "serve", "--policy", str(good), "--upstream", raw_upstream.url, "--listen", "127.0.0.1:0",
         "--grants", str(grants)], capture_output=True, text=True, timeout=60, env=clean_env(), stdin=subprocess.DEVNULL)
    assert serve.returncode == 1
    assert f"{grants}: invalid JSON at line 3, column 1: " in serve.stderr, serve.stderr


def test_a_misspelled_key_gets_a_did_you_mean(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text('version: "1"\ntools:\n  delete_note:\n    acton: deny\n')
    out = check(str(policy))
    assert out.returncode == 1
    assert out.stderr.strip() == (
        f'{policy}: tools.delete_note.acton: unknown key "acton" (did you mean "action"?); '
        "expected one of: action, approval, arguments, limits, reason"), out.stderr


STDIO_REFUSED = ["--listen", "--grants", "--admin-token-file", "--admin-listen", "--allowed-origin", "--allowed-host",
                 "--max-connections", "--client-idle-timeout"]


def test_stdio_help_lists_only_what_stdio_takes(tmp_path):
    help_text = subprocess.run([binary(), "stdio", "--help"], capture_output=True, text=True, timeout=30).stdout
    options = set(re.findall(r"^  (--[a-z-]+)", help_text, re.MULTILINE))
    assert "--policy" in options and "--grant" in options and "--upstream-command" in options, help_text
    assert not options & set(STDIO_REFUSED), options & set(STDIO_REFUSED)
    policy = tmp_path / "policy.json"
    policy.write_text('{"version": "1"}')
    for flag in STDIO_REFUSED:
        out = subprocess.run(
            [binary(), "stdio", "--policy", str(policy), "--upstream", "http://127.0.0.1:9/mcp", flag, "x"],
            capture_output=True, text=True, timeout=30, env=clean_env(), stdin=subprocess.DEVNULL)
        assert out.returncode == 64, (flag, out.stderr)
        assert f"toolgate stdio: {flag} does not apply" in out.stderr, (flag, out.stderr)
    # serve still lists them all.
    serve_help = subprocess.run([binary(), "serve", "--help"], capture_output=True, text=True, timeout=30).stdout
    assert set(STDIO_REFUSED) <= set(re.findall(r"^  (--[a-z-]+)", serve_help, re.MULTILINE))


def test_readme_and_help_stand_on_their_own():
    readme = (ROOT / "README.md").read_text()
    assert "../shared" not in readme
    assert not re.search(r"DESIGN(\.md)? (section|§)", readme), re.findall(r".{40}DESIGN.{40}", readme)
    for command in ([], ["serve"], ["stdio"], ["check"], ["approvals"], ["hash-token"], ["demo"]):
        text = subprocess.run([binary(), *command, "--help"], capture_output=True, text=True, timeout=30).stdout
        assert "DESIGN" not in text and "../shared" not in text, (command, text)


def test_the_readmes_try_it_lines_run_as_written():
    readme = (ROOT / "README.md").read_text()
    lines = re.findall(r"`bash Tests/e2e/run.sh ([^`]*)`", readme)
    assert lines, "the README has Try it lines"
    # As the README writes them, without TOOLGATE_BIN: collecting each file shows the runner starts and finds it.
    for args in sorted(set(lines)):
        out = subprocess.run(["bash", "Tests/e2e/run.sh", *args.split(), "--collect-only", "-q"], cwd=ROOT,
                             capture_output=True, text=True, timeout=600, env=clean_env())
        assert out.returncode == 0, (args, out.stdout[-2000:], out.stderr[-2000:])
        assert "TOOLGATE_BIN is not set" not in out.stderr


def test_an_upstream_command_that_never_answers_names_the_start_timeout(tmp_path):
    policy = tmp_path / "policy.json"
    policy.write_text('{"version": "1", "default": "allow"}')
    out = subprocess.run(
        [binary(), "serve", "--policy", str(policy), "--listen", "127.0.0.1:0", "--upstream-command", "exec sleep 600",
         "--upstream-start-timeout", "1"], capture_output=True, text=True, timeout=120, env=clean_env(),
        stdin=subprocess.DEVNULL)
    assert out.returncode == 1, out.stderr
    assert ("did not answer initialize within 1 s, toolgate's start timeout (--upstream-start-timeout), "
            "so toolgate stopped it") in out.stderr, out.stderr
    assert "signal 15" not in out.stderr, out.stderr
    # A command that dies on its own is still told apart.
    died = subprocess.run(
        [binary(), "serve", "--policy", str(policy), "--listen", "127.0.0.1:0", "--upstream-command", "exit 3"],
        capture_output=True, text=True, timeout=120, env=clean_env(), stdin=subprocess.DEVNULL)
    assert died.returncode == 1 and "exited with status 3 before answering initialize" in died.stderr, died.stderr
    refused = subprocess.run(
        [binary(), "serve", "--policy", str(policy), "--upstream", "http://127.0.0.1:9/mcp", "--upstream-start-timeout", "1"],
        capture_output=True, text=True, timeout=60, env=clean_env(), stdin=subprocess.DEVNULL)
    assert refused.returncode == 64 and "--upstream-start-timeout applies to --upstream-command only" in refused.stderr

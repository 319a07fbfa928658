#!/usr/bin/env python3
"""Checks the repository's Dockerfile by parsing every instruction (dockerfile-parse,
a real Dockerfile parser from PyPI) and running its HEALTHCHECK command against a
real pushwire.

No container engine can build or run the image on the machines this project is
tested on (no image registry to pull the FROM images from; podman here cannot
start containers), so this checks the facts the image depends on instead:

- every instruction is one Docker knows; two stages, the first named `builder`;
- the builder builds the release binary with the lockfile and takes the git commit
  from the variable build.rs reads (the context has no .git: .dockerignore);
- the final stage is a slim base, runs no command, copies only the pushwire binary
  from the builder, and the ENTRYPOINT is that binary;
- USER is set in the final stage and is not root;
- ENV binds every interface, EXPOSE is the port ENV sets, and that port is the
  server's own default (asked of the binary: `pushwire config check`);
- STOPSIGNAL is SIGTERM;
- HEALTHCHECK asks /healthz on that port, and its command, run as the image would
  run it (exec form, with the image's ENV), exits 0 against a running pushwire and
  non-zero when nothing listens.

Usage: dockerfile-check.py DOCKERFILE PUSHWIRE_BINARY
Prints one line per fact checked; exit status 1 on the first fact that is wrong.
"""

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import time

from dockerfile_parse import DockerfileParser

KNOWN = {
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
    "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME",
    "WORKDIR", "COMMENT",
}

checked = 0


def check(fact, ok, detail=""):
    global checked
    if not ok:
        print(f"dockerfile: FAIL: {fact}{': ' + detail if detail else ''}")
        sys.exit(1)
    checked += 1
    print(f"dockerfile: ok: {fact}")


def env_pairs(value):
    """ENV a=b c=d (or the legacy ENV a b) as a dict."""
    words = shlex.split(value)
    if words and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    return dict(word.split("=", 1) for word in words)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    dockerfile, binary = sys.argv[1], sys.argv[2]
    root = os.path.dirname(os.path.abspath(dockerfile))
    parser = DockerfileParser(path=dockerfile)
    instructions = [i for i in parser.structure if i["instruction"] != "COMMENT"]
    unknown = [i["instruction"] for i in instructions if i["instruction"] not in KNOWN]
    check("every instruction is a Dockerfile instruction", not unknown, str(unknown))

    # Stages: the instructions after each FROM.
    stages = []
    for i in instructions:
        if i["instruction"] == "FROM":
            stages.append({"from": i["value"], "body": []})
        elif stages:
            stages[-1]["body"].append(i)
    check("two stages (multi-stage)", len(stages) == 2 and parser.is_multistage, str(len(stages)))
    builder, final = stages
    name = re.search(r"\bAS\s+(\S+)$", builder["from"], re.IGNORECASE)
    check("the first stage is named builder", name is not None and name.group(1) == "builder", builder["from"])

    runs = [i["value"] for i in builder["body"] if i["instruction"] == "RUN"]
    check(
        "the builder builds the release binary with the lockfile",
        any(re.search(r"cargo build\b.*--release\b.*--locked\b.*--bin pushwire\b", r) for r in runs),
        str(runs),
    )
    builder_env = {}
    for i in builder["body"]:
        if i["instruction"] == "ENV":
            builder_env.update(env_pairs(i["value"]))
    with open(os.path.join(root, "build.rs")) as f:
        build_rs = f.read()
    check(
        "the builder passes the git commit in the variable build.rs reads",
        "PUSHWIRE_GIT_COMMIT" in builder_env and 'VARIABLE: &str = "PUSHWIRE_GIT_COMMIT"' in build_rs,
        str(builder_env),
    )
    with open(os.path.join(root, ".dockerignore")) as f:
        ignored = {line.strip() for line in f if line.strip() and not line.startswith("#")}
    check(".dockerignore keeps target/ and .git out of the context", {"target", ".git"} <= ignored, str(ignored))

    # The final stage.
    base = parser.baseimage
    check("the final stage is a slim image", base.endswith("-slim"), base)
    final_kinds = [i["instruction"] for i in final["body"]]
    check("the final stage runs no command (nothing but the binary is added)", "RUN" not in final_kinds and "ADD" not in final_kinds, str(final_kinds))
    copies = [i["value"].split() for i in final["body"] if i["instruction"] == "COPY"]
    check(
        "the final stage copies only the pushwire binary from the builder",
        len(copies) == 1
        and copies[0][0] == "--from=builder"
        and copies[0][1].endswith("/target/release/pushwire")
        and len(copies[0]) == 3,
        str(copies),
    )
    installed = copies[0][2]
    entrypoint = [json.loads(i["value"]) for i in final["body"] if i["instruction"] == "ENTRYPOINT"]
    check("the entrypoint is that binary", entrypoint == [[installed]], str(entrypoint))
    cmd = [json.loads(i["value"]) for i in final["body"] if i["instruction"] == "CMD"]
    check("the command is serve", cmd == [["serve"]], str(cmd))
    users = [i["value"] for i in final["body"] if i["instruction"] == "USER"]
    check(
        "the final stage runs as a user other than root",
        len(users) == 1 and users[0].split(":")[0] not in ("root", "0"),
        str(users),
    )
    env = {}
    for i in final["body"]:
        if i["instruction"] == "ENV":
            env.update(env_pairs(i["value"]))
    check("it binds every interface", env.get("PUSHWIRE_BIND") == "0.0.0.0", str(env))
    exposed = [i["value"] for i in final["body"] if i["instruction"] == "EXPOSE"]
    check("EXPOSE is the port ENV sets", exposed == [env.get("PUSHWIRE_PORT")], f"{exposed} {env}")

    # The server's own default port, asked of the binary.
    with tempfile.NamedTemporaryFile("w", suffix=".toml") as empty:
        listing = subprocess.run(
            [binary, "config", "check", empty.name],
            capture_output=True, text=True, check=True,
            env={k: v for k, v in os.environ.items() if not k.startswith("PUSHWIRE_")},
        ).stdout
    default_port = re.search(r"^port = (\d+)", listing, re.MULTILINE).group(1)
    check("that port is the server's default", exposed == [default_port], f"{exposed} vs {default_port}")
    signals = [i["value"] for i in final["body"] if i["instruction"] == "STOPSIGNAL"]
    check("STOPSIGNAL is SIGTERM", signals == ["SIGTERM"], str(signals))

    # The health check: its command, run as the image would (exec form, image's ENV).
    health = [i["value"] for i in final["body"] if i["instruction"] == "HEALTHCHECK"]
    check("one HEALTHCHECK", len(health) == 1, str(health))
    form = re.search(r"\bCMD\s+(\[.*\])\s*$", health[0], re.DOTALL)
    check("the health check is in exec form", form is not None, health[0])
    argv = json.loads(form.group(1))
    check("it asks /healthz", "/healthz" in " ".join(argv), str(argv))
    check(
        "its port defaults to the exposed one",
        "${PUSHWIRE_PORT:-%s}" % exposed[0] in " ".join(argv),
        str(argv),
    )
    port = free_port()
    run_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env, "PUSHWIRE_PORT": str(port), "PUSHWIRE_BIND": "127.0.0.1"}
    down = subprocess.run(argv, env=run_env, capture_output=True, timeout=10)
    check("the health check fails when nothing listens", down.returncode != 0)
    server = subprocess.Popen(
        [binary, "serve"], env=run_env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        server.stdout.readline()  # the first line: it listens
        up = subprocess.run(argv, env=run_env, capture_output=True, timeout=10)
        check("the health check passes against a running pushwire", up.returncode == 0, up.stderr.decode())
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    size = os.path.getsize(binary)
    print(f"dockerfile: {checked} facts checked; the binary checked is {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()

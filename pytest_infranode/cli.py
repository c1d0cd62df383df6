"""The ``infranode`` command: platforms, nodes, login, cleanup, doctor, import."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pytest_infranode import claims
from pytest_infranode import convergecache
from pytest_infranode import labels
from pytest_infranode import reaper
from pytest_infranode.convergecache import stale_converged
from pytest_infranode.engine import Engine
from pytest_infranode.engine.api import ImageInfo
from pytest_infranode.engine.bootstrap import BOOTSTRAP_LABEL
from pytest_infranode.engine.images import is_prepared
from pytest_infranode.engine.images import stale_images
from pytest_infranode.errors import DaemonError
from pytest_infranode.errors import InfranodeError
from pytest_infranode.errors import SettingsError
from pytest_infranode.platforms import Catalog
from pytest_infranode.settings import RawOptions
from pytest_infranode.settings import configured_catalog


def _engine(args: argparse.Namespace) -> Engine:
    return Engine.connect(args.docker_host)


def _catalog(args: argparse.Namespace) -> Catalog:
    """The built-in catalog plus ``platform_definitions:`` of the configuration found here."""
    return configured_catalog(RawOptions(cli_config=getattr(args, "config", None)), Path.cwd())


def cmd_platforms(args: argparse.Namespace) -> int:
    """Print the catalog: name, image, init, aliases, and whether the image is on the daemon."""
    catalog = _catalog(args)
    present: dict[str, str] = {}
    engine = None
    if not args.offline:
        try:
            engine = _engine(args)
        except DaemonError as err:
            print(f"(daemon not reachable, availability not shown: {err.what})", file=sys.stderr)
    rows = [("NAME", "IMAGE", "FAMILY", "INIT", "ON DAEMON", "CAN MAKE", "ALIASES")]
    for p in catalog:
        if engine is not None:
            present[p.name] = "yes" if engine.has_image(p.image) else "no"
        sources = (("pull", True), ("dockerfile", bool(p.dockerfile)), ("debootstrap", bool(p.bootstrap)))
        make = ", ".join(word for word, ok in sources if ok)
        rows.append((p.name, p.image, p.family, p.init, present.get(p.name, "?"), make, ", ".join(p.aliases)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print(
        "\nSelect with --infra-platform=NAME or ALIAS, a glob ('debian-*'), or a family (family:rhel). "
        "Families: " + ", ".join(catalog.families())
    )
    return 0


def cmd_images(args: argparse.Namespace) -> int:
    """List prepared and bootstrapped images; ``prune`` removes stale prepared ones."""
    engine = _engine(args)
    catalog = _catalog(args)
    current = {p.name: engine.recipe_key(p) for p in catalog}
    converged = engine.list_images(labels.CONVERGE)
    converged_ids = {i.id for i in converged}
    prepared = [i for i in engine.list_images(labels.RECIPE) if i.id not in converged_ids and is_prepared(i)]
    stale_ids = {i.id for i in stale_images(prepared, current)}
    stale_ids |= {i.id for i in stale_converged(converged, current)}
    if getattr(args, "converged", False):
        stale_ids |= converged_ids
    if args.action == "prune":
        removed = 0
        for image in [*converged, *prepared]:
            if image.id not in stale_ids:
                continue
            tag = ", ".join(image.repo_tags) or image.id[7:19]
            try:
                engine.remove_image(image.id)
            except InfranodeError as err:
                print(f"kept {tag}: {err.what}", file=sys.stderr)
                continue
            print(f"removed {tag}")
            removed += 1
        print(f"{removed} stale prepared or converged image(s) removed")
        return 0
    rows = [("IMAGE", "PLATFORM", "KIND", "RECIPE", "STATE", "SIZE")]
    for image in prepared:
        lab = image.labels
        state = "stale" if image.id in stale_ids else "current"
        if current.get(lab.get(labels.PLATFORM, "")) is None and state == "current":
            state = "current?"  # the base image is not on the daemon: cannot tell
        rows.append(_image_row(image, "prepared", lab.get(labels.RECIPE, "?"), state))
    for image in converged:
        lab = image.labels
        state = "stale" if image.id in stale_ids else "current"
        rows.append(_image_row(image, "converged", lab.get(convergecache.RECIPE_OF, "?"), state))
    for image in engine.list_images(BOOTSTRAP_LABEL):
        rows.append(_image_row(image, "bootstrapped", image.labels.get(BOOTSTRAP_LABEL, "?"), "base"))
    if len(rows) == 1:
        print("no infranode images on this daemon")
        return 0
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if stale_ids:
        print(f"\n{len(stale_ids)} stale: remove them with `infranode images prune`")
    return 0


def _image_row(image: ImageInfo, kind: str, recipe: str, state: str) -> tuple[str, str, str, str, str, str]:
    name = image.repo_tags[0] if image.repo_tags else image.id[7:19]
    mib = f"{image.size / 2**20:.0f} MiB" if image.size is not None else "?"
    return (name, image.labels.get(labels.PLATFORM, "?"), kind, recipe, state, mib)


def cmd_images_bootstrap(args: argparse.Namespace) -> int:
    """Make a Debian or Ubuntu platform's base image with debootstrap, without a registry."""
    catalog = _catalog(args)
    engine = _engine(args)
    for platform in catalog.select(args.platforms, where="infranode images bootstrap"):
        tag = args.tag or platform.image
        if engine.has_image(tag) and not args.force:
            print(f"{tag}: already on the daemon (--force makes it again)")
            continue
        engine.bootstrap_image(platform, tag, lambda msg: print(f"==> {msg}", flush=True), mirror=args.mirror)
    return 0


def cmd_nodes(args: argparse.Namespace) -> int:
    """List containers made by infranode sessions (kept or still running)."""
    engine = _engine(args)
    listed = engine.list_containers([labels.SESSION])
    holders = claims.claimed_by(listed)
    found = [c for c in listed if not claims.is_marker(c)]
    if not found:
        print("no infranode nodes on this daemon")
        return 0
    for c in found:
        used = f"  in use by session {holders[c.id]}" if c.id in holders else ""
        print(
            f"{c.name}  platform={c.labels.get(labels.PLATFORM, '?')}  "
            f"session={c.labels.get(labels.SESSION, '?')}  state={c.state or '?'}{used}"
        )
    return 0


def cmd_login(args: argparse.Namespace) -> int:
    """Open an interactive shell in a node (hands the terminal to ``docker exec -it``)."""
    if not sys.stdin.isatty():  # else docker's own "the input device is not a TTY"
        print(
            "`infranode login` opens an interactive shell and needs a terminal, but its input is "
            "not one (a pipe, a CI job, a script).\n"
            f"  fix:   run it from a terminal, or run a command without one: "
            f"`docker exec {args.node} <command>` (`docker exec -i {args.node} sh < script.sh` for a script)",
            file=sys.stderr,
        )
        return 2
    engine = _engine(args)
    names = {c.name for c in engine.list_containers([labels.SESSION])}
    if args.node not in names:
        print(f"no infranode node called {args.node!r}; `infranode nodes` lists them", file=sys.stderr)
        return 1
    # An interactive terminal is the one thing the SDK does not do well; the CLI owns the tty.
    env = dict(os.environ)
    if engine.info.source != "default socket":
        env["DOCKER_HOST"] = engine.info.endpoint
    shell = "if command -v bash >/dev/null; then exec bash -l; else exec sh -l; fi"
    try:
        os.execvpe("docker", ["docker", "exec", "-it", args.node, "/bin/sh", "-c", shell], env)
    except FileNotFoundError:
        print(
            "`infranode login` needs the docker CLI on PATH (apt-get install docker.io, or docker-ce-cli)",
            file=sys.stderr,
        )
        return 1


def cmd_cleanup(args: argparse.Namespace) -> int:
    """Remove nodes left behind: by default those of expired sessions (kept nodes included)."""
    engine = _engine(args)
    spared: list[str] = []

    def in_use(name: str, session: str) -> None:
        spared.append(f"kept {name}: in use by session {session} (--infra-reuse), not removed")

    if args.session:
        removed = reaper.sweep(engine, session_id=args.session, in_use=in_use)
    elif args.all:
        if not args.yes:
            if not sys.stdin.isatty():
                print(
                    "refusing to remove live sessions' nodes without --yes (no terminal to ask)",
                    file=sys.stderr,
                )
                return 2
            answer = input("remove every infranode node on this daemon, including live sessions'? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                print("nothing removed")
                return 1
        removed = reaper.sweep(engine)
    else:
        removed = reaper.sweep_expired(engine, include_kept=True, in_use=in_use)
    for name in removed:
        print(f"removed {name}")
    for line in spared:
        print(line)
    print(f"{len(removed)} node(s) removed")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Check that the daemon can run nodes; for each problem say the cause, evidence and fix."""
    from pytest_infranode.engine.diagnosis.findings import render_json
    from pytest_infranode.engine.diagnosis.findings import render_text
    from pytest_infranode.engine.doctor import run_doctor

    catalog = Catalog()
    names = [n.strip() for n in (args.platform or "").split(",") if n.strip()]
    chosen = [catalog.get(n, where="infranode doctor --platform") for n in names] if names else list(catalog)
    images = [] if args.no_images else sorted({p.image for p in chosen})
    report = run_doctor(args.docker_host, wait=args.wait, images=images)
    print(render_json(report) if args.json else render_text(report))
    return 0 if report.ok else 1


def cmd_import_molecule(args: argparse.Namespace) -> int:
    """Write the infranode.yaml equivalent to a Molecule scenario, and say what it leaves out."""
    from pytest_infranode.molecule import render
    from pytest_infranode.molecule.reader import find_role_dir
    from pytest_infranode.molecule.reader import read_scenario
    from pytest_infranode.molecule.translate import translate

    cwd = Path.cwd()
    role_dir = find_role_dir(Path(args.role) if args.role else cwd)
    scenario = read_scenario(role_dir, _scenario_name(args.scenario, role_dir))
    output = Path(args.output).resolve() if args.output else scenario.directory / "infranode.yaml"
    translation = translate(
        scenario,
        config_dir=output.parent,
        allow_privileged=args.allow_privileged,
        allow_outside_project=args.allow_outside_project,
    )
    text = render.infranode_yaml(translation)
    if args.print:
        print(text, end="")
        return 0
    files = {output: text, **{output.parent / n: t for n, t in translation.files.items()}}
    existing = [p for p in files if p.exists()]
    if existing and not args.force:
        raise SettingsError(
            f"{existing[0].name} exists already; not overwritten",
            where=str(existing[0]),
            fix="run again with --force to replace it (or --output PATH to write elsewhere, --print to look)",
        )
    for path, content in files.items():
        path.write_text(content, encoding="utf-8")
    print(render.report(translation, list(files), cwd))
    return 0


def _scenario_name(given: str | None, role_dir: Path) -> str:
    """The scenario asked for; else ``default``, or the role's only scenario."""
    from pytest_infranode.molecule.reader import scenario_names

    if given:
        return given
    names = scenario_names(role_dir)
    if "default" in names or len(names) != 1:
        if "default" not in names:
            raise SettingsError(
                f"which scenario? {role_dir} has no `default` scenario",
                where=str(role_dir / "molecule"),
                fix=f"name one: `infranode import molecule {names[0]}` (scenarios: {', '.join(names)})",
            )
        return "default"
    return names[0]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="infranode", description="Throwaway Docker nodes for pytest.")
    parser.add_argument(
        "--docker-host", default=None, help="daemon to use; default: DOCKER_HOST, then the local socket"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("platforms", help="list the platform catalog")
    p.add_argument("--offline", action="store_true", help="do not ask the daemon which images it has")
    p.set_defaults(func=cmd_platforms)
    p = sub.add_parser("images", help="list infranode's images, prune stale ones, bootstrap base images")
    images_sub = p.add_subparsers(dest="action")
    p.set_defaults(func=cmd_images, action="list")
    images_sub.add_parser("list", help="prepared and bootstrapped images (default)")
    prune = images_sub.add_parser(
        "prune",
        help="remove prepared images whose recipe changed, and converged images (--infra-cache=converge) "
        "made from them or replaced by a newer converge of the same node",
    )
    prune.add_argument("--converged", action="store_true", help="remove every converged image, stale or not")
    b = images_sub.add_parser("bootstrap", help="make Debian/Ubuntu base images with debootstrap")
    b.add_argument("platforms", nargs="+", help="platform names, aliases, globs or family:NAME")
    b.add_argument("--mirror", default="", help="apt mirror; default: the platform's (deb.debian.org)")
    b.add_argument("--tag", default="", help="image tag to make; default: the platform's image (debian:12)")
    b.add_argument("--force", action="store_true", help="make it even if the daemon has it")
    b.set_defaults(func=cmd_images_bootstrap)
    sub.add_parser("nodes", help="list nodes on the daemon").set_defaults(func=cmd_nodes)
    p = sub.add_parser("login", help="open a shell in a node")
    p.add_argument("node")
    p.set_defaults(func=cmd_login)
    p = sub.add_parser("cleanup", help="remove nodes of expired sessions (and kept nodes)")
    p.add_argument("--session", help="only the nodes of this session id")
    p.add_argument("--all", action="store_true", help="every infranode node, live sessions' too")
    p.add_argument("--yes", "-y", action="store_true", help="with --all: do not ask for confirmation")
    p.set_defaults(func=cmd_cleanup)
    p = sub.add_parser("doctor", help="check the Docker daemon: endpoint, engine, files, a container, images")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--wait", type=float, default=None, help="seconds to wait for a starting daemon; default 10, tcp 30"
    )
    p.add_argument("--platform", default=None, help="check only these platforms' images (comma-separated)")
    p.add_argument("--no-images", action="store_true", help="do not check the platform images")
    p.set_defaults(func=cmd_doctor)
    p = sub.add_parser("import", help="write infranode.yaml from another tool's configuration")
    import_sub = p.add_subparsers(dest="tool", required=True)
    m = import_sub.add_parser(
        "molecule",
        help="a Molecule scenario (molecule/<scenario>/molecule.yml) as infranode.yaml; what it leaves out",
    )
    m.add_argument(
        "scenario", nargs="?", default=None, help="the scenario; default: `default`, or the only one"
    )
    m.add_argument(
        "--role", default=None, help="the role's folder (the one with molecule/); default: here or above"
    )
    m.add_argument(
        "--output", default=None, help="where to write infranode.yaml; default: the scenario's folder"
    )
    m.add_argument("--force", action="store_true", help="replace an infranode.yaml that exists")
    m.add_argument("--print", action="store_true", help="print infranode.yaml instead of writing it")
    m.add_argument(
        "--allow-privileged",
        action="store_true",
        help="keep `privileged: true` instead of the least-privilege systemd recipe",
    )
    m.add_argument(
        "--allow-outside-project",
        action="store_true",
        help="write `allow_outside_project: true` when the scenario's inventory links name folders "
        "outside the scenario's folder (pytest's rootdir)",
    )
    m.set_defaults(func=cmd_import_molecule)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except InfranodeError as err:
        print(f"infranode: {err}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `infranode platforms | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

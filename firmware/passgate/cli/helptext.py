"""Every sub-command's ``--help`` ends with its exit codes and an example (a man page's
EXIT STATUS and EXAMPLES, in the terminal), for ``passgate`` and ``passgate-collector`` alike.

Rules kept here:
- One table, ``EPILOGS``: a command path (``"passgate bundle install"``) -> what exit 1 means
  for it (None: it has no exit 1) and one example line. :func:`document` walks a built
  parser and gives every sub-command a description (its help line, when it has none), that
  epilog, and a formatter that keeps the epilog's lines. A sub-command missing from the table
  raises ``KeyError`` naming it, so a new command cannot ship without them
  (``tests/test_cli_help.py`` walks every sub-command's ``--help``). A module that writes its
  own epilog with "exit codes:" and "example:" keeps it.
- Exit codes are the command line's contract (``passgate.cli``): 0 success, 1 what the table
  says, 2 usage or configuration error.
- Only the parsers that were built are documented: ``passgate``'s placeholders for the
  sub-commands not loaded (lazy loading) are left alone, so this imports nothing.
"""

from __future__ import annotations

import argparse

EXIT_2 = "2  usage or configuration error (one line on stderr says what is wrong)"

# path -> (meaning of exit 1 or None, example)
EPILOGS: dict[str, tuple[str | None, str]] = {
    "passgate": ("denied, or a check failed (see the sub-command)", "passgate verify pass.png"),
    "passgate keys": (None, "passgate keys new-issuer --out keys/issuer"),
    "passgate keys new-issuer": (None, "passgate keys new-issuer --out keys/issuer"),
    "passgate keys new-device": (None, "sudo passgate keys new-device --out /var/lib/pg-sync"),
    "passgate keys new-root": (None, "passgate keys new-root --out /media/usb/root-1"),
    "passgate keys new-revocation": (None, "passgate keys new-revocation --out keys/revocation"),
    "passgate keys new-time": (None, "passgate keys new-time --out keys/time"),
    "passgate issue": (None, "passgate issue --key keys/issuer/issuer.key --zone lobby "
                             "--duration 8h --png pass.png"),
    "passgate verify": ("the pass is denied (the reason is printed)", "passgate verify pass.png"),
    "passgate log": (None, "sudo passgate log --since 2h --limit 50"),
    "passgate sync": ("a round did not finish: not uploaded, or rows still pending",
                      "sudo -u passgate-sync passgate sync --once"),
    "passgate sync enrol": ("the collector refused the token",
                            "sudo -u passgate-sync passgate sync enrol --token TOKEN "
                            "--collector https://collector.example --device gate-1"),
    "passgate sync status": (None, "passgate sync status"),
    "passgate bundle": ("the installed bundle is stale, or a bundle was refused",
                        "passgate bundle status"),
    "passgate bundle build": (None, "passgate bundle build --root root-1/root.key --issuers "
                                    "issuers/ --version 2 --out bundle.bin"),
    "passgate bundle inspect": (None, "passgate bundle inspect bundle.bin"),
    "passgate bundle install": ("the bundle was refused (signature, roots or version)",
                                "sudo passgate bundle install bundle.bin"),
    "passgate bundle status": ("the installed bundle is stale", "passgate bundle status"),
    "passgate bundle revoke": (None, "passgate bundle revoke --base bundle.bin --key "
                                     "revocation.key --revoked revoked.txt --version 3 "
                                     "--out bundle-3.bin"),
    "passgate bundle delta": (None, "passgate bundle delta old.bin new.bin --out delta.bin"),
    "passgate time": ("the clock is not trusted, or a time token was refused",
                      "passgate time status"),
    "passgate time status": ("the clock is not trusted", "passgate time status"),
    "passgate time challenge": (None, "passgate time challenge"),
    "passgate time set": ("the time token was refused", "sudo passgate time set --token T.bin"),
    "passgate time token": (None, "passgate time token --key time.key --device gate-1"),
    "passgate provision": ("the device file was refused", "sudo passgate provision "
                           "--device-file /boot/firmware/passgate-device.toml"),
    "passgate run": (None, "passgate run --simulate"),
    "passgate config": (None, "passgate config --dump"),
    "passgate selftest": ("a check failed (its FAIL line says which)", "sudo passgate selftest"),
    "passgate-collector": (None, "passgate-collector serve --db sqlite:///var/lib/c.db"),
    "passgate-collector serve": (None, "passgate-collector serve --db postgresql://collector@/pg "
                                       "--time-key /etc/passgate-collector/time.key"),
    "passgate-collector token": (None, "passgate-collector token new --device gate-1"),
    "passgate-collector token new": (None, "passgate-collector token new --device gate-1"),
    "passgate-collector bundle": (None, "passgate-collector bundle publish bundle.bin"),
    "passgate-collector bundle publish": (None, "passgate-collector bundle publish bundle.bin"),
    "passgate-collector time-key": (None, "passgate-collector time-key new --out /etc/pgc"),
    "passgate-collector time-key new": (None, "passgate-collector time-key new --out /etc/pgc"),
    "passgate-collector device": (None, "passgate-collector device disable gate-7"),
    "passgate update": ("the update failed or was rolled back (the state file says why)",
                        "sudo passgate update"),
    "passgate update status": (None, "passgate update status --json"),
    "passgate-collector release": (None, "passgate-collector release status"),
    "passgate-collector release publish": (None, "passgate-collector release publish "
                                                 "passgate_0.2.0_arm64.release "
                                                 "passgate_0.2.0_arm64.deb"),
    "passgate-collector release rollout": (None, "passgate-collector release rollout 0.2.0 "
                                                 "--percent 10"),
    "passgate-collector release status": (None, "passgate-collector release status --json"),
    "passgate-collector site": (None, "passgate-collector site set north-campus "
                                      "--tz Europe/Moscow --device gate-1"),
    "passgate-collector user": (None, "passgate-collector user list"),
    "passgate-collector user add": (None, "passgate-collector user add anna --role supervisor"),
    "passgate-collector user passwd": (None, "passgate-collector user passwd anna"),
    "passgate-collector user role": (None, "passgate-collector user role anna admin"),
    "passgate-collector user remove": (None, "passgate-collector user remove anna"),
    "passgate-collector user list": (None, "passgate-collector user list"),
    "passgate-collector user totp": (None, "passgate-collector user totp enable anna"),
    "passgate-collector retention": (None, "passgate-collector retention run"),
    "passgate-collector retention run": (None, "passgate-collector retention run"),
}


def epilog(path: str) -> str:
    """The exit codes and the example of the command at ``path``."""
    exit_1, example = EPILOGS[path]
    codes = ["0  success"] + ([f"1  {exit_1}"] if exit_1 else []) + [EXIT_2]
    return "exit codes:\n" + "".join(f"  {c}\n" for c in codes) + f"\nexample:\n  {example}\n"


def subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """The parser's direct sub-commands as (name, help line, parser), in their order."""
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            out += [(name, helps.get(name, ""), sp) for name, sp in action.choices.items()]
    return out


def document(parser: argparse.ArgumentParser, path: str | None = None) -> None:
    """Give ``parser`` and every built sub-command a description and the epilog."""
    path = path or parser.prog
    if not (parser.epilog and "exit codes:" in parser.epilog and "example:" in parser.epilog):
        parser.epilog = epilog(path)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    for name, help_line, sub in subcommands(parser):
        if not sub.add_help:
            continue  # passgate's lazy placeholder: documented when its module is loaded
        if not sub.description and help_line:
            sub.description = help_line[0].upper() + help_line[1:] + "."
        document(sub, f"{path} {name}")

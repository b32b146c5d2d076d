"""The device's updater: signed releases from the collector, installed with a way back.

Its own unit (``passgate-update.service``, started by ``passgate-update.timer``; and
``passgate-update-resume.service`` at every boot, which only goes on with an update in
progress: a read-only root's update reboots out of the overlay and back), not part of the
sync agent: installing a package needs root (dpkg, systemctl, a
writable root), and the sync agent runs as an unprivileged user with no capabilities and a
read-only system; giving it root would widen the one process that talks to the network all
the time. The updater runs for a minute a few times a day, as root, and the sync agent only
reads the updater's state file to report it in its heartbeat.

State machine and resumption: :mod:`passgate.update.updater`; the state file:
:mod:`passgate.update.state`; dpkg, systemctl, mount, raspi-config and the reboot:
:mod:`passgate.update.system`.
"""

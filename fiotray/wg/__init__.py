"""WireGuard for fiotray, standard library only: the privileged helper runs it as root.

    errors   exit codes shared by the helper and its callers, WgError, secret-free text
    config   the wg-quick config model, its strict parser and canonical renderer
    dump     `wg show IFNAME dump` without its secrets
    tools    system tools by absolute path, with a fixed environment, on subprocess

Nothing here imports from the rest of fiotray: the helper's installer copies this package
beside the helper, and the core, the helper and the server share one parser.
"""

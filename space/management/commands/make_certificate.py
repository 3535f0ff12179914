"""``manage.py make_certificate HOST...``: a site CA and a server certificate signed by it, for Space's own HTTPS."""

import pwd
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from core.certificates import SERVER_DAYS, SERVER_DAYS_MAX, CertificateError, make_request, make_site_certificate

WARNING = """\
WARNING: this CA signs itself (self-signed): it is for testing, or for a small site without a PKI
of its own, and browsers trust it only where it was imported (step 2). Keep ca.key
offline or at least readable by this account only: whoever holds it can impersonate any server to
the browsers that trust it. A site with its own certificate authority (Active Directory Certificate
Services, an enterprise PKI) should have it sign Space's certificate instead:
    manage.py make_certificate HOST... --request   (a key and a signing request, server.csr)
then install the certificate it issues (with its intermediate CAs after it) as in step 4."""


class Command(BaseCommand):
    help = (
        "Make a site certificate authority (or reuse the one in --out) and a server certificate signed by it for "
        "every HOST (DNS names and IP addresses), for Space's own HTTPS. ECDSA P-256 keys, written mode 0600."
    )

    def add_arguments(self, parser):
        parser.add_argument("hosts", nargs="+", metavar="HOST", help="A name or address clients use for Space.")
        parser.add_argument("--out", help="Folder for ca.crt, ca.key, server.crt, server.key (default VAR_DIR/tls).")
        parser.add_argument(
            "--days",
            type=int,
            default=SERVER_DAYS,
            help=f"Validity of the server certificate (default {SERVER_DAYS}, at most {SERVER_DAYS_MAX}).",
        )
        parser.add_argument(
            "--request",
            action="store_true",
            help="Make only a server key and a signing request (server.csr) for the site's own CA to sign.",
        )

    def handle(self, *args, **options):
        folder = Path(options["out"] or Path(settings.VAR_DIR) / "tls").resolve()
        hosts = options["hosts"]
        try:
            if options["request"]:
                paths = make_request(hosts, folder)
            else:
                made = make_site_certificate(hosts, folder, options["days"], ca_name=f"Space site CA ({hosts[0]})")
        except (CertificateError, OSError) as error:
            raise CommandError(str(error)) from None
        if options["request"]:
            self.stdout.write(
                f"Made a server key, {paths.server_key} (mode 0600), and a signing request for "
                f"{', '.join(hosts)}: {paths.server_request}\n"
                "Have the site's CA sign it for server authentication, put the certificate it issues (and its "
                f"intermediate CAs after it) in {paths.server_cert}, then set\n"
                f"    SPACE_TLS_CERT_FILE={paths.server_cert}\n    SPACE_TLS_KEY_FILE={paths.server_key}"
            )
            return
        paths = made.paths
        first = "Made a new site CA" if made.ca_made else "Reused the site CA already there"
        self.stdout.write(
            f"1. CA: {first}: {paths.ca_cert} (key {paths.ca_key}, mode 0600), "
            f"valid until {made.ca_cert.not_valid_after_utc:%Y-%m-%d}.\n"
            f"2. Distribute: import {paths.ca_cert} into the trusted root certification authorities of every "
            "browser and client that uses Space (and give it to local bridges: --ca-file).\n"
            f"3. Sign: made a server key and certificate for {', '.join(hosts)}, signed by that CA: "
            f"{paths.server_cert}, valid until {made.server_cert.not_valid_after_utc:%Y-%m-%d}.\n"
            "4. Install: start Space with\n"
            f"    SPACE_TLS_CERT_FILE={paths.server_cert}\n    SPACE_TLS_KEY_FILE={paths.server_key}\n"
            f"   (the key must be readable by the account Space runs as; it is now {self.owner(paths.server_key)}'s)."
        )
        self.stderr.write(WARNING)

    @staticmethod
    def owner(path: Path) -> str:
        uid = path.stat().st_uid
        try:
            return pwd.getpwuid(uid).pw_name
        except KeyError:
            return f"user {uid}"

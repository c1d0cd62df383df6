"""Converge a Debian node into a small web server, with pyinfra."""

from io import StringIO

from pyinfra import host
from pyinfra.operations import apt
from pyinfra.operations import files
from pyinfra.operations import systemd

site_name = host.data.get("site_name", "pyinfra-demo")

apt.packages(
    name="Install nginx and curl",
    packages=["nginx", "curl"],
    update=True,
    cache_time=3600,
    no_recommends=True,
)

files.directory(name="Document root", path="/srv/www", mode="755")

files.put(
    name="Home page",
    src=StringIO(f"<!doctype html>\n<title>{site_name}</title>\n<h1>Hello from {site_name}</h1>\n"),
    dest="/srv/www/index.html",
    mode="644",
)

site = files.put(
    name="Site configuration",
    src="files/site.conf",
    dest="/etc/nginx/sites-available/site.conf",
    user="root",
    group="www-data",
    mode="640",
)

default_gone = files.link(
    name="Default site disabled", path="/etc/nginx/sites-enabled/default", present=False
)

enabled = files.link(
    name="Site enabled",
    path="/etc/nginx/sites-enabled/site.conf",
    target="/etc/nginx/sites-available/site.conf",
)

systemd.service(
    name="Nginx enabled and running",
    service="nginx",
    running=True,
    enabled=True,
    restarted=site.changed or default_gone.changed or enabled.changed,
)

#!/bin/sh
# The web node: builds its page from what the db node serves (reached by its name, `db`).
set -eu
install -d -m 0755 /srv/web
i=0
until python3 -c 'import urllib.request, sys; sys.stdout.write(urllib.request.urlopen("http://db:8000/", timeout=2).read().decode())' > /tmp/rows 2>/dev/null; do
    i=$((i + 1)); [ "$i" -lt 50 ] || { echo "db is not reachable" >&2; exit 1; }; sleep 0.2
done
printf '<h1>%s</h1>\n<p>%s</p>\n' "$SITE_NAME" "$(cat /tmp/rows)" > /srv/web/index.html
cat > /etc/systemd/system/web.service <<'UNIT'
[Unit]
Description=demo web server
[Service]
ExecStart=/usr/bin/python3 -m http.server 80 --directory /srv/web
[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now web.service

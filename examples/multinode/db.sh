#!/bin/sh
# The "database": a tiny HTTP service on port 8000, a systemd unit.
set -eu
install -d -m 0755 /srv/db
echo "rows-from-db" > /srv/db/index.html
cat > /etc/systemd/system/db.service <<'UNIT'
[Unit]
Description=demo database
[Service]
ExecStart=/usr/bin/python3 -m http.server 8000 --directory /srv/db
[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now db.service

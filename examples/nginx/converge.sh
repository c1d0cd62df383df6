#!/bin/sh
# Converge a Debian node into a small web server.
set -eu

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends nginx curl

install -d -m 0755 /srv/www
cat > /srv/www/index.html <<HTML
<!doctype html>
<title>${SITE_NAME}</title>
<h1>Hello from ${SITE_NAME}</h1>
HTML
chmod 0644 /srv/www/index.html

cat > /etc/nginx/sites-available/site.conf <<'CONF'
server {
    listen 80 default_server;
    root /srv/www;
    index index.html;
    add_header X-Served-By infranode always;
}
CONF
chmod 0640 /etc/nginx/sites-available/site.conf
chown root:www-data /etc/nginx/sites-available/site.conf
rm -f /etc/nginx/sites-enabled/default
ln -sf /etc/nginx/sites-available/site.conf /etc/nginx/sites-enabled/site.conf

nginx -t
systemctl enable nginx
systemctl restart nginx

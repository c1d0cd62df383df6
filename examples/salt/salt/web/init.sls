web-packages:
  pkg.installed:
    - pkgs: [nginx, curl]

/srv/www/index.html:
  file.managed:
    - makedirs: true
    - mode: "0644"
    - contents: |
        <!doctype html>
        <h1>Hello from {{ pillar['site_name'] }}</h1>

/etc/nginx/sites-available/site.conf:
  file.managed:
    - user: root
    - group: www-data
    - mode: "0640"
    - contents: |
        # Managed by Salt
        server { listen 80 default_server; root /srv/www; add_header X-Served-By salt always; }
    - require: [{pkg: web-packages}]

/etc/nginx/sites-enabled/default:
  file.absent: []

/etc/nginx/sites-enabled/site.conf:
  file.symlink:
    - target: /etc/nginx/sites-available/site.conf

nginx:
  service.running:
    - enable: true
    - watch:
      - file: /etc/nginx/sites-available/site.conf
      - file: /etc/nginx/sites-enabled/default
      - file: /etc/nginx/sites-enabled/site.conf

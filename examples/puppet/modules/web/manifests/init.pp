class web {
  package { ['nginx', 'curl']:
    ensure => installed,
  }

  file { '/srv/www':
    ensure => directory,
    mode   => '0755',
  }

  file { '/srv/www/index.html':
    ensure  => file,
    mode    => '0644',
    content => epp('web/index.html.epp', { 'site_name' => $facts['site_name'] }),
  }

  file { '/etc/nginx/sites-available/site.conf':
    ensure  => file,
    owner   => 'root',
    group   => 'www-data',
    mode    => '0640',
    content => "# Managed by Puppet\nserver {\n    listen 80 default_server;\n    root /srv/www;\n    index index.html;\n    add_header X-Served-By puppet always;\n}\n",
    require => Package['nginx'],
    notify  => Service['nginx'],
  }

  file { '/etc/nginx/sites-enabled/default':
    ensure  => absent,
    require => Package['nginx'],
    notify  => Service['nginx'],
  }

  file { '/etc/nginx/sites-enabled/site.conf':
    ensure  => link,
    target  => '/etc/nginx/sites-available/site.conf',
    require => Package['nginx'],
    notify  => Service['nginx'],
  }

  service { 'nginx':
    ensure   => running,
    enable   => true,
    provider => systemd,
  }
}

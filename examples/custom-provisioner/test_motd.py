def test_motd_is_set(host):
    assert host.file("/etc/motd").content_string == "Welcome to an infranode node\n"


def test_motd_is_world_readable(host):
    assert host.file("/etc/motd").mode == 0o644

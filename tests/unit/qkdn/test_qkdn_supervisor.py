from qkdn.supervisor import BACKOFF_MAX_S, restart_delay


def test_restart_backoff_doubles_and_caps():
    assert restart_delay(0) == 0
    assert restart_delay(1) == 0.2
    assert restart_delay(2) == 0.4
    assert restart_delay(3) == 0.8
    assert restart_delay(50) == BACKOFF_MAX_S

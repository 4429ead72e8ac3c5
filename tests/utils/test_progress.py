"""Status lines come out as written: brackets kept, one line however long."""

from reasoner.utils import progress


def test_a_logged_command_keeps_its_brackets_and_stays_one_line(capsys):
    command = "reasoner decode 'sweep=[1,4,16,64]' sweep_methods=[majority,best_of_n] " + "x=1 " * 40
    progress.log(command)
    err = capsys.readouterr().err
    assert err == command + "\n"

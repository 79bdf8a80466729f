"""Coverage-guided fuzzing (atheris) of every parser of outside bytes: targets.py names them, run.py runs one."""

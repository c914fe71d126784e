"""The one-machine MPI settings of scripts/one-node.env for the Python scripts."""
import os

ENV_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "one-node.env")


def one_node_env(base=None, **extra):
    """A copy of `base` (os.environ by default) with the settings of one-node.env the caller
    has not set, then `extra` (which wins)."""
    env = dict(os.environ if base is None else base)
    with open(ENV_FILE) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                name, _, value = line.partition("=")
                env.setdefault(name, value)
    env.update(extra)
    return env

"""The Lightning loop of a local job: the module every arm shares, its data, crash resume."""

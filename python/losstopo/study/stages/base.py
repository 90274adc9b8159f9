"""What a stage of the study is: its name and CLI command, the stages it needs, the
setting that asks for it, the files it writes, the results it leaves, its report
sections, how to run it and what it will cost."""

from __future__ import annotations

from ..results import NoResults


class Stage:
    """One stage of the study. A subclass sets the class attributes and writes run()
    (and estimate() and report_sections where it has them); registering an instance in
    ``stages.REGISTRY`` is all the runner, the CLI, the estimate and the report need.

    name: the stage's name (manifest ``stages``, log lines). command: the CLI command
    that runs it (None: one of its own, with ``command_help``); stages that share a
    command run in the registry's order. configures: its command sets a study up (takes
    the configuration's flags). requires: the stages that must have finished first.
    after: stages that run before it when they run (order only); "*": all others
    (several such stages run last, in the registry's order).
    asked_by: the setting that asks for it (0 or None: it does not run). settings: the
    Setting rows it adds to the table (a stage's own settings; the built-in stages'
    are rows of settings.SETTINGS). results: its Results record. always: it runs on
    every run (the figures and report are drawn again from the files).
    report_sections: (rank, function(config, results) -> lines); the report orders
    every stage's sections by rank."""

    name = ""
    command = None
    command_help = ""
    configures = False
    requires: tuple = ()
    after = ()
    asked_by = None
    settings: tuple = ()
    results = NoResults
    always = False
    report_sections: tuple = ()

    @property
    def cli_command(self) -> str:
        return self.command or self.name

    def produces(self) -> list:
        """The names of every file this stage can write (relative to the folder)."""
        return []

    def done(self, study) -> bool:
        """Whether its work is there (the manifest records it finished)."""
        return study.done(self.name)

    def run(self, study):
        """Does the stage's work on ``study`` (a runner.Study) and returns its
        Results."""
        raise NotImplementedError

    def finished(self, study) -> None:
        """Called once its results are in the manifest (the plot stage writes the
        report then)."""

    def estimate(self, config: dict, cal: dict, schedule) -> list:
        """[(key, label, seconds)] projected for ``config`` from the calibration
        ``cal`` (estimate.calibrate); ``schedule(tasks)`` is the time a list of task
        durations takes on the workers. [] where the stage costs nothing to speak of."""
        return []

    def __repr__(self) -> str:
        return f"<stage {self.name}>"

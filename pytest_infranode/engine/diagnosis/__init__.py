"""The doctor's diagnosis of a Docker daemon, in parts that a test can take one at a time.

Facts are gathered, verdicts turn them into findings, and findings make up the report:

* :mod:`.facts`: frozen values of what was found (a socket, a port, TLS files, an ssh address);
* :mod:`.probes`: the small, bounded I/O that gathers them (a ``stat``, a connect, one request);
* the pure verdicts, one module per topology: :mod:`.address` (the DOCKER_HOST text and the
  environment), :mod:`.unix`, :mod:`.tcp` (TLS included), :mod:`.ssh`, and :mod:`.capabilities`
  (what a daemon that answers can do for nodes);
* :mod:`.live`: the checks that run throwaway containers on a daemon that answers;
* :mod:`.findings`: :class:`~.findings.Finding`, :class:`~.findings.Report` and their renderings;
  :mod:`.ci`: the CI service and its own fix sentences.

No module here imports :mod:`pytest_infranode.engine.daemon`, which uses the probes and verdicts
to explain a failed connect; :func:`pytest_infranode.engine.doctor.run_doctor` puts them together.
This file imports nothing, so that ``daemon`` loads only the parts it uses.
"""

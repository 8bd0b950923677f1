"""imdshunt: find AWS credentials stolen from a metadata service (MITRE T1552.005).

The library is usable on its own (see :mod:`imdshunt.api`); the command line in
:mod:`imdshunt.cli` is a thin layer over it. Importing does no work: no AWS clients,
no connections, no downloads.
"""

__version__ = "0.1.0"
FINDINGS_SCHEMA_VERSION = "1.0"

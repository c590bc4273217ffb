"""Reading a CSV the user dropped in the folder: one streaming pass that checks, describes and spools it.

Rooms: `stream` (the pass itself), `encoding` (is it UTF-8 text), `dialect` (delimiter, quoting, header
and column names). The spool it writes lives in `keboola_sync.spool`, its gzip in `keboola_sync.pgzip`;
they are re-exported here because the loader and the tests have always imported them from here.
"""

from keboola_sync.spool import Spool, SpoolReader

from .dialect import Dialect, sniff_dialect
from .stream import CsvInfo, HeaderHook, inspect, inspect_and_spool

__all__ = [
    "CsvInfo",
    "Dialect",
    "HeaderHook",
    "Spool",
    "SpoolReader",
    "inspect",
    "inspect_and_spool",
    "sniff_dialect",
]

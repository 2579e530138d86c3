"""Sample databases of the embedded platform's demo.

The SQLite connector (in tidemark-common) reads ``path: sample:<name>`` by looking the name up
in the ``tidemark.samples`` entry-point group, which this package fills (see its
pyproject.toml): the runtime library carries no demo data, and a service that has the CLI
package installed (the embedded platform, the development workspace) finds the samples.
"""

from pathlib import Path

SHOP = Path(__file__).resolve().parent / "shop.sqlite"

from tidemark.api.serve import service_main
from tidemark_schema.app import DEFINITION, create_app
from tidemark_schema.settings import SchemaSettings


def main() -> None:
    service_main(DEFINITION, SchemaSettings, create_app)

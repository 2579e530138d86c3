from tidemark.api.serve import service_main
from tidemark_impact.app import DEFINITION, create_app
from tidemark_impact.settings import ImpactSettings


def main() -> None:
    service_main(DEFINITION, ImpactSettings, create_app)

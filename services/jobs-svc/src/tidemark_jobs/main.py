from tidemark.api.serve import service_main
from tidemark_jobs.app import DEFINITION, create_app
from tidemark_jobs.rebuild import rebuild_from_kafka
from tidemark_jobs.settings import JobsSettings


def main() -> None:
    service_main(DEFINITION, JobsSettings, create_app, commands={
        "rebuild": ("replay the runs topic into an empty read model (stop jobs-svc first)", rebuild_from_kafka),
    })

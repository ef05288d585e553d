"""A local emulator of Azure ML endpoints, for tests and demos without Azure.

It serves, on one port:

- the dedicated ``POST /score`` route in the wire format of a chosen model family (``gpt2``,
  ``dolly``, ``hf``, ``tgi``, ``llama``, ``llama-chat``, ``vllm``, ``bart``) with several
  deployments and a traffic split (``score_url``);
- the serverless OpenAI-style routes ``/v1/...`` and at the root: ``chat/completions``,
  ``completions``, ``embeddings``, ``images/embeddings``, ``GET info`` (``serverless_url``);
- the model-inference API under ``/models/...`` (same routes, ``api-version`` required;
  ``models_url``);
- the OpenAI v1 API under ``/openai/v1/...``: ``chat/completions``, ``completions``,
  ``embeddings``, ``GET models``, OpenAI's error shape, for the official ``openai`` SDK
  (``openai_v1_url``).

Chats stream, call tools (arguments valid for the tool's JSON schema) and answer
``response_format`` JSON; embeddings are deterministic unit vectors; seeded faults (429, 408,
424, 5xx, cut streams, broken JSON) apply to every inference route. It is written from the wire
facts alone and never imports the client.

Example::

    import httpx
    from azml_client.emulator import Deployment, EmulatorConfig, Faults, run_emulator

    config = EmulatorConfig(
        api_key="secret",
        deployments=[Deployment("blue", "llama", traffic=90), Deployment("green", "vllm", 10)],
        faults=Faults(rate_limit_rps=5, burst=2),
    )
    with run_emulator(config) as emu:
        r = httpx.post(
            emu.score_url,
            headers={"Authorization": "Bearer secret", "azureml-model-deployment": "blue"},
            json={"input_data": {"input_string": ["Hello"], "parameters": {"max_new_tokens": 8}}},
        )
        print(r.json(), emu.stats.by_status)

``create_app(config)`` gives the bare ASGI app (e.g. for ``httpx.ASGITransport``);
``arun_emulator`` is the ``async with`` twin of ``run_emulator``; ``serve`` runs in the foreground.
"""

from azml_client.emulator._app import EmulatorApp as EmulatorApp
from azml_client.emulator._app import create_app as create_app
from azml_client.emulator._config import Deployment as Deployment
from azml_client.emulator._config import EmulatorConfig as EmulatorConfig
from azml_client.emulator._config import Faults as Faults
from azml_client.emulator._families import FAMILIES as FAMILIES
from azml_client.emulator._runner import EmulatorServer as EmulatorServer
from azml_client.emulator._runner import arun_emulator as arun_emulator
from azml_client.emulator._runner import run_emulator as run_emulator
from azml_client.emulator._runner import serve as serve
from azml_client.emulator._stats import EmulatorStats as EmulatorStats

__all__ = [
    "FAMILIES",
    "Deployment",
    "EmulatorApp",
    "EmulatorConfig",
    "EmulatorServer",
    "EmulatorStats",
    "Faults",
    "arun_emulator",
    "create_app",
    "run_emulator",
    "serve",
]

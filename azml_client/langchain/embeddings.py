"""``AzureMLEmbeddings``: LangChain's ``Embeddings`` on ``client.embed`` / ``embed_many``.

::

    from azml_client.langchain import AzureMLEmbeddings

    embeddings = AzureMLEmbeddings(
        endpoint_url="https://<resource>.services.ai.azure.com/models", api_key="...",
        model="text-embedding-3-small",
    )
    vectors = embeddings.embed_documents(["first", "second"])

Up to ``chunk_size`` texts go in one request; more go through the bulk engine
(``embed_many``: that many texts per request, adaptive concurrency, vectors in input order).
Serverless, models and openai_v1 endpoints (``POST .../embeddings``).
"""

from __future__ import annotations

from typing import Any

from langchain_core.embeddings import Embeddings
from pydantic import Field

from ._base import AzureMLEndpointBase

__all__ = ["AzureMLEmbeddings"]


class AzureMLEmbeddings(AzureMLEndpointBase, Embeddings):
    """Text embeddings from an Azure AI endpoint (see the module docstring).

    Takes the connection arguments of :class:`AzureMLOnlineEndpoint` (``endpoint_url``,
    ``api_key`` / ``endpoint_api_key``, ``api_type``, ``model``, ``client=``, ...).
    """

    dimensions: int | None = None
    """Length of the vectors, for models that can shorten them."""
    chunk_size: int = Field(default=64, ge=1)
    """Texts per request."""
    send_input_type: bool = False
    """Send ``input_type`` ``"document"`` / ``"query"`` (the model inference API's hint for
    retrieval models; the OpenAI v1 API has no such field)."""

    def _options(self, input_type: str) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.dimensions is not None:
            options["dimensions"] = self.dimensions
        if self.send_input_type:
            options["input_type"] = input_type
        return options

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, in order."""
        if not texts:
            return []
        client = self._clients.sync()
        options = self._options("document")
        if len(texts) <= self.chunk_size:
            return client.embed(texts, **options).vectors
        return client.embed_many(texts, batch_size=self.chunk_size, **options).vectors

    def embed_query(self, text: str) -> list[float]:
        """The vector of one query."""
        return self._clients.sync().embed([text], **self._options("query")).vectors[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, in order."""
        if not texts:
            return []
        client = await self._clients.aget()
        options = self._options("document")
        if len(texts) <= self.chunk_size:
            return (await client.embed(texts, **options)).vectors
        return (await client.embed_many(texts, batch_size=self.chunk_size, **options)).vectors

    async def aembed_query(self, text: str) -> list[float]:
        """The vector of one query."""
        client = await self._clients.aget()
        return (await client.embed([text], **self._options("query"))).vectors[0]

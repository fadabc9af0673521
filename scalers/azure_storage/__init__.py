"""azure-queue and azure-blob: Azure Storage accounts, read with the SDKs' asyncio clients."""

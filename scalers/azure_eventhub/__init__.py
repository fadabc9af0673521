"""azure-eventhub: unprocessed events of an Event Hub consumer group, from checkpoints in blob storage."""

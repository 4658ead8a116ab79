# unde-shard

"""What every builder shares: the builder contract, options, shards, runner, engines, manifest, cards, media tools."""

"""zapstream's pure domain: the Session aggregate, its commands, events and decisions."""

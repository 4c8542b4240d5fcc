"""Scripts the anime studio's tests and benchmarks film: twelve sentences, three of them dialogue."""

LANTERN_BOAT = (
    "Mika wakes before dawn in the harbour town. "
    '"Today the lantern boat sails," she whispers. '
    "She runs down the hill past the sleeping shops. "
    "The old fisherman is already untying the ropes. "
    '"You are late, little one," he laughs. '
    "The boat slides out over the silver water. "
    "Lanterns bob on the waves like fallen stars. "
    "A great whale rises beside the boat. "
    '"Do not be afraid," says the fisherman. '
    "Mika reaches out and touches the whale's cool skin. "
    "The whale sings and dives into the deep. "
    "At sunrise the whole town cheers from the shore."
)

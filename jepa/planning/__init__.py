"""Planning with a world model: environments, offline trajectories, costs and planners."""

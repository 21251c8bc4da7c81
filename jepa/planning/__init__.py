"""The planning agent: a frozen exported encoder as the eyes of an action-conditioned world model,
a cost with hard guardrails, planners (CEM, MPPI, gradient) run as model-predictive control.

Entry points: ``envs.make_env`` (any registered environment: ``envs/registry.py``), ``episodes.write_episodes`` / ``trajectories.read_episodes``,
``perception.Perception``, ``world_export.load_world_model``, ``planners``, ``costs``, ``agent.run_episode``,
and the commands ``jepa world`` / ``jepa plan`` (``commands.py``). Nothing is imported here, so that
``import jepa`` stays light.
"""

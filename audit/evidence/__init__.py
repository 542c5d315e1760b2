"""What probes write and faults read: result types and the measurement keys.

It sits at the bottom of the layers so the fault units that judge measurements never import
the probes that take them.
"""

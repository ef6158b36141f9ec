"""Content library, MLR review and e-signature, CLM presentations and slide tracking."""

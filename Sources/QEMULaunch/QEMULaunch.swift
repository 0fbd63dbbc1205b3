public enum QEMULaunch {}

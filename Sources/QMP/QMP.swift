public enum QMP {}

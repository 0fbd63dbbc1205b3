// Guest kit: see README.md in this folder.
public enum GuestKit {}
